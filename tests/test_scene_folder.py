"""FolderSceneSource: photos -> patch-aligned scenes; bad files skipped with a warning; clear errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from envs.scenes import FolderSceneSource


def _write(path, image_rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def photo_dir(tmp_path):
    # 200 x 400 photo: left half red, right half blue; a centre square crop keeps both halves equally.
    wide = np.zeros((200, 400, 3), np.uint8)
    wide[:, :200] = (255, 0, 0)
    wide[:, 200:] = (0, 0, 255)
    _write(tmp_path / "a_wide.png", wide)
    tall = np.full((300, 150, 3), 90, np.uint8)
    _write(tmp_path / "sub" / "b_tall.jpg", tall)
    (tmp_path / "c_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_source_skips_bad_files_with_one_warning(photo_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="envs.scenes.folder"):
        source = FolderSceneSource(photo_dir, image_size=224, patch_size=14)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "c_corrupt.jpg" in warnings[0].getMessage()
    assert len(source) == 2 and [p.name for p in source.skipped] == ["c_corrupt.jpg"]
    scenes = list(source)
    assert [s.scene_id for s in scenes] == [0, 1]
    for s in scenes:
        assert s.image.shape == (224, 224, 3) and s.image.dtype == np.uint8
        assert s.objects == [] and s.split == "folder" and s.layout is None and s.source is not None
    wide = scenes[0].image
    assert (wide[:, :100] == (255, 0, 0)).all() and (wide[:, -100:] == (0, 0, 255)).all()
    assert source[1].source.endswith("b_tall.jpg")


def test_folder_source_resize_mode_keeps_aspect(photo_dir):
    source = FolderSceneSource(photo_dir, image_size=224, patch_size=14, mode="resize")
    wide, tall = source.load(0).image, source.load(1).image
    assert wide.shape == (112, 224, 3)
    assert tall.shape == (224, 112, 3)
    assert wide.shape[0] % 14 == 0 and tall.shape[1] % 14 == 0


def test_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        FolderSceneSource(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        FolderSceneSource(empty)
    (empty / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="1 unreadable files skipped"):
        FolderSceneSource(empty)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        FolderSceneSource(empty, image_size=200, patch_size=14)
    with pytest.raises(ValueError, match="is a file"):
        FolderSceneSource(empty / "bad.png")


def test_folder_source_without_validation_fails_at_load(photo_dir):
    source = FolderSceneSource(photo_dir, image_size=224, validate=False)
    assert len(source) == 3 and source.skipped == []
    bad = [p.name for p in source.files].index("c_corrupt.jpg")
    with pytest.raises(ValueError, match=r"c_corrupt\.jpg"):
        source.load(bad)
    with pytest.raises(IndexError):
        source.load(3)
