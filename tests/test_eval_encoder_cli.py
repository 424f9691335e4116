"""The eval_encoder CLI: table + JSON + PCA grids on a synthetic or given labelled folder, cached sets, clear errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import encoders
from encoders.eval.report import read_report
from envs.scenes.object_set import read_object_labels, write_object_set
from experiments import eval_encoder

FAST = ["--probe-epochs", "5", "--probe-lrs", "0.01", "--batch-size", "32"]


def _write_two_class_folder(root, n_train=6, n_val=3):
    """Class 'disc' is a white disc, class 'bar' a white bar, on black: separable from raw pixels alone."""
    for split, n in (("train", n_train), ("val", n_val)):
        for cls in ("bar", "disc"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = np.zeros((40, 40, 3), np.uint8)
                if cls == "disc":
                    cv2.circle(img, (20 + i % 3, 20), 12, (255, 255, 255), -1)
                else:
                    cv2.rectangle(img, (4, 16 + i % 3), (36, 24 + i % 3), (255, 255, 255), -1)
                cv2.imwrite(str(root / split / cls / f"{i}.png"), img)


def test_synthetic_run_prints_the_table_and_writes_json_and_pca(tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["--encoder", "vit_pico_patch14", "--synthetic", "--synthetic-dir", str(cache), "--output", str(out)]
    args += ["--synthetic-train-per-class", "3", "--synthetic-val-per-class", "1", "--pca-images", "4", *FAST]
    assert eval_encoder.main(args) == 0
    table = capsys.readouterr().out
    assert "| encoder | k-NN top-1 | linear top-1 |" in table
    assert "| raw pixels 16x16 |" in table and "| vit_pico_patch14 (random init) |" in table
    rows, meta = read_report(out / "results.json")
    assert [r.encoder for r in rows] == [
        "raw pixels 16x16",
        "gray pixels 16x16",
        "HOG (14 px cells, 9 bins)",
        "vit_pico_patch14 (random init)",
    ]
    assert meta["n_train"] == 36 and meta["n_val"] == 12 and len(meta["classes"]) == 12
    assert all(0.0 <= r.knn_top1 <= 1.0 and 0.0 <= r.linear_top1 <= 1.0 for r in rows)
    assert rows[0].feature_dim == 3 * 16 * 16 and rows[1].feature_dim == 16 * 16 and rows[3].feature_dim == 64
    # the object set records backgrounds, so every row also reports how well its features predict them
    assert "background k-NN top-1 |" in table and len(meta["backgrounds"]) > 1
    assert all(0.0 <= r.background_knn_top1 <= 1.0 for r in rows)
    png = cv2.imread(rows[3].extra["pca_png"])
    assert png is not None and png.shape == (112 + 2 * 4, 4 * 224 + 5 * 4, 3)
    assert json.loads((out / "config.json").read_text())["encoder"] == "vit_pico_patch14"
    # the set is cached: a second run reuses the same files
    files = sorted(p.name for p in (cache.iterdir()))
    stamp = next((cache / files[0] / "train").rglob("*.png")).stat().st_mtime_ns
    assert eval_encoder.main([*args, "--output", str(tmp_path / "out2"), "--pca-images", "0"]) == 0
    assert sorted(p.name for p in cache.iterdir()) == files
    assert next((cache / files[0] / "train").rglob("*.png")).stat().st_mtime_ns == stamp


def test_folder_run_with_weights_extra_encoder_and_pixel_baseline(tmp_path, capsys):
    data = tmp_path / "data"
    _write_two_class_folder(data)
    teacher = encoders.create_model("vit_pico_patch14")
    weights = encoders.save_backbone(teacher, tmp_path / "pico.pth", name="vit_pico_patch14")
    args = ["--encoder", "vit_pico_patch14", "--weights", str(weights), "--data", str(data), "--k", "3"]
    args += ["--image-size", "28", "--pixel-size", "8", "--extra", f"again=vit_pico_patch14:{weights}"]
    args += ["--output", str(tmp_path / "out"), "--pooling", "cls+avgpool", "--precision", "bf16", *FAST]
    assert eval_encoder.main(args) == 0
    assert "[cls+avgpool]" in capsys.readouterr().out
    rows, meta = read_report(tmp_path / "out" / "results.json")
    assert meta["precision"] == "bf16"
    labels = [r.encoder for r in rows]
    assert labels == [
        "raw pixels 8x8",
        "gray pixels 8x8",
        "HOG (14 px cells, 9 bins)",
        "vit_pico_patch14 (random init)",
        "vit_pico_patch14 (pico.pth)",
        "again",
    ]
    assert rows[0].knn_top1 == 1.0  # discs vs bars: raw pixels suffice
    assert rows[2].knn_top1 == 1.0  # and so does their outline's HOG
    assert rows[4].knn_top1 == rows[5].knn_top1 and rows[4].linear_top1 == rows[5].linear_top1  # same weights
    assert rows[4].feature_dim == 64 and rows[4].linear_pooling == "cls+avgpool"
    assert all(r.background_knn_top1 is None for r in rows)  # a plain labelled folder: no background labels


def test_background_labels_follow_the_object_set_metadata(tmp_path):
    for split in ("train", "val"):
        write_object_set(tmp_path / split, 4, split, ("car", "tree"), image_size=28, progress=False)
    train, val = eval_encoder.load_splits(tmp_path, 28, 14)
    bg_train, bg_val, vocabulary = eval_encoder.background_labels(train, val)
    for split, bg in ((train, bg_train), (val, bg_val)):
        meta = read_object_labels(split.root)
        expected = [meta[p.relative_to(split.root).as_posix()]["background"] for p in split.samples]
        assert [vocabulary[i] for i in bg.tolist()] == expected
    # a single background (or no labels.jsonl) leaves nothing to measure
    for split in ("train", "val"):
        write_object_set(tmp_path / "plain" / split, 2, split, ("car",), image_size=28, backgrounds=("plain",))
    assert eval_encoder.background_labels(*eval_encoder.load_splits(tmp_path / "plain", 28, 14)) is None
    (tmp_path / "train" / "labels.jsonl").unlink()
    assert eval_encoder.background_labels(train, val) is None


def test_plain_background_synthetic_set_is_cached_separately(tmp_path):
    cache = tmp_path / "cache"
    args = ["--encoder", "vit_pico_patch14", "--synthetic", "--synthetic-dir", str(cache), "--pca-images", "0"]
    args += ["--synthetic-train-per-class", "2", "--synthetic-val-per-class", "1", "--no-baselines", *FAST]
    assert eval_encoder.main([*args, "--output", str(tmp_path / "a")]) == 0
    assert eval_encoder.main([*args, "--output", str(tmp_path / "b"), "--synthetic-backgrounds", "plain"]) == 0
    plain = next(cache.glob("*_plainbg_*"))
    assert {m["background"] for m in read_object_labels(plain / "train").values()} == {"plain"}
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


def test_errors_name_the_problem_and_the_fix(tmp_path, capsys):
    assert eval_encoder.main(["--encoder", "vit_pico_patch14"]) == 2
    assert "--data DIR" in capsys.readouterr().err
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    assert eval_encoder.main(["--encoder", "vit_pico_patch14", "--data", str(tmp_path / "data")]) == 2
    assert "val not found" in capsys.readouterr().err
    missing = str(tmp_path / "nope.pth")
    assert eval_encoder.main(["--encoder", "vit_pico_patch14", "--weights", missing, "--synthetic"]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(ValueError, match="LABEL=NAME:WEIGHTS"):
        eval_encoder.parse_extra("just_a_name")
