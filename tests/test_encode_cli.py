"""The encoder demo CLI: shapes printed, PCA PNG written, clear errors."""

from __future__ import annotations

import cv2
import numpy as np

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
