"""The encoder demo CLI: shapes printed, PCA PNG written, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from experiments import encode


def test_encode_writes_pca_png_next_to_the_image(tmp_path, capsys):
    image = np.full((100, 150, 3), 90, np.uint8)
    cv2.circle(image, (75, 50), 30, (0, 0, 255), -1)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), image)
    assert encode.main(["--encoder", "vit_pico_patch14", "--image", str(path), "--size", "140"]) == 0
    out = capsys.readouterr().out
    assert "x_norm_patchtokens   (1, 70, 64)" in out  # 100x150 -> 93x140 -> 98x140 pixels -> 7x10 patches
    png = cv2.imread(str(tmp_path / "photo_pca.png"))
    assert png is not None and png.shape == (98, 280, 3)  # image and PCA map side by side


def test_encode_errors_are_clear(tmp_path, capsys):
    assert encode.main(["--encoder", "vit_pico_patch14", "--image", str(tmp_path / "missing.jpg")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert encode.main(["--encoder", "vit_pico_patch14", "--image", str(bad)]) == 2
    assert "bad.jpg" in capsys.readouterr().err


def test_encode_precision_flag_reports_the_path_and_returns_fp32(tmp_path, capsys):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((56, 56, 3), 90, np.uint8))
    for precision in ("fp32", "bf16"):
        args = ["--encoder", "vit_pico_patch14", "--image", str(path), "--size", "56", "--precision", precision]
        assert encode.main(args) == 0
        assert f"blocks=2, {precision}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        encode.main(["--encoder", "vit_pico_patch14", "--image", str(path), "--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_random_init_is_seeded(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (56, 56, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    maps = []
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        out = tmp_path / f"{name}.png"
        args = ["--encoder", "vit_pico_patch14", "--image", str(tmp_path / "x.png"), "--size", "56"]
        assert encode.main([*args, "--seed", str(seed), "--output", str(out), "--precision", "fp32"]) == 0
        maps.append(cv2.imread(str(out)))
    assert np.array_equal(maps[0], maps[1]) and not np.array_equal(maps[0], maps[2])
