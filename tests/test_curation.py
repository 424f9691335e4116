"""Curation: planted duplicates removed, retrieval from the seed classes, exact top-k, k-means and balancing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import encoders
from encoders.curation import balanced_sample, deduplicate, embed_images, kmeans, retrieve_nearest
from encoders.curation.dedup import near_duplicate_pairs
from encoders.data.augmentations import center_crop_transform
from encoders.eval.features import pixel_features
from experiments import curate

# Pixel-separable classes: a bright square in one quadrant (jittered position, size, colour; noisy pixels).
# With 16x16 pixel embeddings, distinct images of a class have cosine <= 0.992 and images of different classes
# <= 0.68, while a JPEG re-encode or a slight resize of an image stays >= 0.998 to its original.
CENTRES = {"top_left": (18, 18), "top_right": (46, 18), "bottom_left": (18, 46), "bottom_right": (46, 46)}
THRESHOLD = 0.995


def _image(cls: str, rng: np.random.Generator) -> np.ndarray:
    img = np.full((64, 64, 3), 40, np.uint8)
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    cx, cy = (c + int(rng.integers(-4, 5)) for c in CENTRES[cls])
    r = int(rng.integers(9, 13))
    cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    return np.clip(img.astype(int) + rng.integers(-25, 26, img.shape), 0, 255).astype(np.uint8)


def _save(path, img: np.ndarray, quality: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else []
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """pool/: 8 images per class + 3 planted duplicates + 1 corrupt file; seeds/: 2 new images of 2 classes."""
    root = tmp_path_factory.mktemp("curation")
    rng = np.random.default_rng(0)
    originals = {}
    for cls in CENTRES:
        for i in range(8):
            originals[(cls, i)] = img = _image(cls, rng)
            _save(root / "pool" / cls / f"{i}.png", img)
    a, b, c = originals[("top_left", 2)], originals[("top_right", 5)], originals[("bottom_left", 7)]
    _save(root / "pool" / "zz_copies" / "exact.png", a)  # exact copy, another name
    _save(root / "pool" / "zz_copies" / "reencoded.jpg", b, quality=90)  # JPEG re-encode
    _save(root / "pool" / "zz_copies" / "resized.png", cv2.resize(c, (58, 58), interpolation=cv2.INTER_AREA))
    (root / "pool" / "zz_copies" / "corrupt.png").write_bytes(b"not an image")
    for cls in ("top_left", "bottom_right"):
        for i in range(2):
            _save(root / "seeds" / cls / f"seed{i}.png", _image(cls, rng))
    return root


def _curate(folders, out, *extra: str) -> dict:
    args = ["--pool", str(folders / "pool"), "--seeds", str(folders / "seeds"), "--output", str(out)]
    args += ["--encoder", "pixels", "--image-size", "32", "--pixel-size", "16", "--chunk-size", "8"]
    assert curate.main([*args, "--dedup-threshold", str(THRESHOLD), *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def test_pipeline_removes_planted_duplicates_and_retrieves_from_seed_classes(folders, tmp_path, capsys):
    summary = _curate(folders, tmp_path / "out", "--k-per-seed", "5")
    pool = folders / "pool"
    assert summary["pool_images"] == 36 and summary["unreadable"] == 1
    assert summary["duplicates_removed"] == 3 and summary["after_dedup"] == 32
    removed = dict(line.split("\t") for line in (tmp_path / "out" / "duplicates.tsv").read_text().splitlines()[1:])
    assert removed == {
        str(pool / "zz_copies" / "exact.png"): str(pool / "top_left" / "2.png"),
        str(pool / "zz_copies" / "reencoded.jpg"): str(pool / "top_right" / "5.png"),
        str(pool / "zz_copies" / "resized.png"): str(pool / "bottom_left" / "7.png"),
    }
    selected = (tmp_path / "out" / "selected.txt").read_text().splitlines()
    assert summary["selected"] == len(selected) == summary["retrieved"]
    assert 5 <= len(selected) <= 20
    assert {p.split("/")[-2] for p in selected} == {"top_left", "bottom_right"}  # only the seed classes
    assert all(s["retrieved"] == 5 for s in summary["per_seed"])
    # the selection is a file list the pretraining dataset reads
    from encoders.data.image_folder import ImageFolderDataset

    assert len(ImageFolderDataset(file_list=tmp_path / "out" / "selected.txt")) == len(selected)
    # a second run reuses the cached embeddings and selects the same files
    capsys.readouterr()
    _curate(folders, tmp_path / "out", "--k-per-seed", "5")
    assert "reusing pool embeddings" in capsys.readouterr().err
    assert (tmp_path / "out" / "selected.txt").read_text().splitlines() == selected


def test_kmeans_balancing_caps_each_cluster(folders, tmp_path):
    summary = _curate(folders, tmp_path / "out", "--k-per-seed", "0", "--kmeans-clusters", "4", "--per-cluster", "3")
    selected = (tmp_path / "out" / "selected.txt").read_text().splitlines()
    assert summary["kmeans"]["cluster_sizes"] == {"min": 8, "max": 8, "median": 8.0}  # the 4 quadrant classes
    assert len(selected) == 12 and summary["kmeans"]["selected_per_cluster_max"] == 3
    assert sorted(p.split("/")[-2] for p in selected) == sorted([c for c in CENTRES for _ in range(3)])


def test_cli_errors_are_clear(folders, tmp_path, capsys):
    assert curate.main(["--pool", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "--pool folder not found" in capsys.readouterr().err
    args = ["--pool", str(folders / "pool"), "--output", str(tmp_path / "o"), "--encoder", "pixels"]
    assert curate.main([*args, "--kmeans-clusters", "4"]) == 2
    assert "--per-cluster" in capsys.readouterr().err
    assert curate.main([*args, "--dedup-threshold", "1.5"]) == 2  # the range in the field's type
    assert "--dedup-threshold must be in [-1, 1], got 1.5" in capsys.readouterr().err


def test_embed_streams_into_a_memmap_and_flags_unreadable_files(folders, tmp_path):
    files = sorted((folders / "pool" / "zz_copies").iterdir())  # corrupt.png, exact.png, reencoded.jpg, resized.png
    transform = center_crop_transform(32, resize_size=32)
    fn = lambda x: pixel_features(x, 4)  # noqa: E731
    mem = embed_images(files, fn, transform, tmp_path / "e.npy", batch_size=3, progress=False)
    ram = embed_images(files, fn, transform, None, batch_size=2, progress=False)
    assert mem.valid.tolist() == [False, True, True, True]
    assert np.array_equal(np.load(tmp_path / "e.npy"), ram.vectors) and mem.vectors.dtype == np.float16
    assert np.abs(ram.vectors[0]).max() == 0 and np.allclose(
        np.linalg.norm(ram.vectors[1:].astype(float), axis=1), 1, atol=1e-3
    )


def test_dedup_links_chains_keeps_the_first_and_ignores_invalid_rows():
    e = np.eye(6, dtype=np.float32)
    v = np.stack([e[0], e[1], (e[0] + 0.05 * e[2]), e[3], e[3], e[4]])
    v[5] = (e[0] + 0.1 * e[5]) / np.linalg.norm(e[0] + 0.1 * e[5])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    result = deduplicate(v, threshold=0.99, chunk_size=2)
    assert result.keep.tolist() == [True, True, False, True, False, False]
    assert result.representative.tolist() == [0, 1, 0, 3, 3, 0]
    assert result.n_removed == 3
    invalid = deduplicate(v, threshold=0.99, valid=np.array([False, True, True, True, True, True]), chunk_size=4)
    assert invalid.keep.tolist() == [False, True, True, True, False, False] and invalid.representative[0] == -1
    assert sorted(map(tuple, near_duplicate_pairs(v, 0.99, chunk_size=5).tolist())) == [(0, 2), (0, 5), (2, 5), (3, 4)]
    with pytest.raises(ValueError, match="cosine similarity"):
        deduplicate(v, threshold=1.5)


def test_retrieval_matches_brute_force_top_k_with_candidates():
    g = torch.Generator().manual_seed(0)
    pool = F.normalize(torch.randn(500, 16, generator=g), dim=1).numpy()
    seeds = F.normalize(torch.randn(7, 16, generator=g), dim=1).numpy()
    allowed = np.random.default_rng(0).random(500) > 0.3
    result = retrieve_nearest(pool, seeds, k=10, candidates=allowed, chunk_size=64)
    sim = seeds @ pool.T
    sim[:, ~allowed] = -np.inf
    expected = np.argsort(-sim, axis=1)[:, :10]
    assert np.array_equal(result.indices, expected)
    np.testing.assert_allclose(result.similarities, np.take_along_axis(sim, expected, 1), rtol=1e-5)
    few = retrieve_nearest(pool[:3], seeds, k=5, chunk_size=2)
    assert (few.indices[:, 3:] == -1).all() and np.isinf(few.similarities[:, 3:]).all()
    assert few.selected().tolist() == [0, 1, 2]


def test_kmeans_recovers_separated_clusters_and_respects_the_mask():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(5, 32, generator=g), dim=1)
    labels = torch.arange(5).repeat(40)
    x = F.normalize(centres[labels] + 0.05 * torch.randn(200, 32, generator=g), dim=1).numpy()
    mask = np.ones(200, dtype=bool)
    mask[:5] = False
    result = kmeans(x, 5, mask=mask, seed=0, chunk_size=37)
    assert (result.assignments[:5] == -1).all()
    pairs = {(int(a), int(b)) for a, b in zip(result.assignments[5:], labels[5:].tolist())}
    assert len(pairs) == 5  # a one-to-one map between clusters and the planted groups
    assert result.sizes().sum() == 195
    again = kmeans(x, 5, mask=mask, seed=0, chunk_size=64)
    assert np.array_equal(again.assignments, result.assignments)
    restarts = kmeans(x, 5, mask=mask, seed=0, n_init=3)
    assert restarts.score >= result.score - 1e-6
    with pytest.raises(ValueError, match="--kmeans-clusters"):
        kmeans(x[:3], 5)


def test_balanced_sample_caps_clusters_and_prefers_priority():
    assignments = np.array([0, 0, 0, 0, 1, 1, 2, -1])
    assert balanced_sample(assignments, 2, seed=0).tolist()[-3:] == [4, 5, 6]
    assert len(balanced_sample(assignments, 2, seed=0)) == 5
    priority = np.array([0.1, 0.9, 0.5, 0.8, 0.0, 0.0, 0.0, 1.0])
    assert balanced_sample(assignments, 2, priority=priority).tolist() == [1, 3, 4, 5, 6]
    assert balanced_sample(assignments, 5, rows=np.array([0, 6, 7])).tolist() == [0, 6]


def test_degenerate_embeddings_of_a_random_init_vit_are_flagged(folders, tmp_path, capsys):
    args = ["--pool", str(folders / "pool" / "top_left"), "--output", str(tmp_path / "o"), "--k-per-seed", "0"]
    assert curate.main([*args, "--encoder", "vit_pico_patch14", "--image-size", "28"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["pool_mean_cosine"] > 0.99 and summary["after_dedup"] == 1
    assert "nearly identical" in capsys.readouterr().err


def test_vit_embeddings_are_cached_per_precision_and_bf16_stays_close(folders, tmp_path, capsys):
    out, weights = tmp_path / "o", tmp_path / "pico.pth"
    torch.save(encoders.create_model("vit_pico_patch14").state_dict(), weights)  # one encoder for every run
    args = ["--pool", str(folders / "pool" / "top_left"), "--output", str(out), "--k-per-seed", "0"]
    args += ["--encoder", "vit_pico_patch14", "--weights", str(weights), "--image-size", "28"]
    assert curate.main([*args, "--precision", "fp32"]) == 0
    fp32 = np.load(out / "pool_embeddings.npy").astype(np.float32)
    assert json.loads((out / "summary.json").read_text())["precision"] == "fp32"
    capsys.readouterr()
    assert curate.main([*args, "--precision", "bf16"]) == 0
    assert "reusing pool embeddings" not in capsys.readouterr().err  # the other precision embeds again
    bf16 = np.load(out / "pool_embeddings.npy").astype(np.float32)
    assert json.loads((out / "summary.json").read_text())["precision"] == "bf16"
    assert not np.array_equal(bf16, fp32) and (bf16 * fp32).sum(axis=1).min() >= 0.999  # unit rows: dot = cosine
    assert curate.main([*args, "--precision", "bf16"]) == 0
    assert "reusing pool embeddings" in capsys.readouterr().err
