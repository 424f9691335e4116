"""Image-folder datasets: scanning, file lists, corrupt-file skipping (also across workers), labelled layout."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from encoders.data.image_folder import ImageFolderDataset, LabelledImageFolder
from encoders.preprocessing import scan_image_files


def write(path, value: int, ext: str | None = None, size: tuple[int, int] = (6, 8)) -> None:
    """A constant image whose red channel is ``value`` (identifies the file after decoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((*size, 3), np.uint8)
    rgb[..., 0] = value
    ok, buf = cv2.imencode(ext or path.suffix, rgb[..., ::-1])
    assert ok
    buf.tofile(str(path))


def red(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    write(root / "b.png", 20)
    write(root / "a.jpg", 10)
    write(root / "sub" / "c.PNG", 30, ext=".png")
    write(root / "sub" / "deeper" / "d.webp", 40)
    write(root / "z.bmp", 50)
    write(root / ".hidden.png", 99)
    write(root / ".cache" / "e.png", 99)
    (root / "notes.txt").write_text("not an image")
    return root


def test_scan_is_recursive_sorted_case_insensitive_and_skips_hidden(tree):
    files = [p.relative_to(tree).as_posix() for p in scan_image_files(tree)]
    assert files == ["a.jpg", "b.png", "sub/c.PNG", "sub/deeper/d.webp", "z.bmp"]
    assert [p.name for p in scan_image_files(tree, extensions=("png",))] == ["b.png", "c.PNG"]


def test_dataset_items_are_rgb_arrays_with_label_zero(tree):
    ds = ImageFolderDataset(tree)
    assert len(ds) == 5
    image, label = ds[1]
    assert label == 0 and image.dtype == np.uint8 and image.shape == (6, 8, 3)
    assert red(image) == 20 and int(image[..., 2].max()) == 0  # RGB, not BGR
    assert red(ds[-1][0]) == 50
    with pytest.raises(IndexError):
        ds[5]


def test_transform_is_applied(tree):
    ds = ImageFolderDataset(tree, transform=lambda img: img.shape)
    assert ds[0] == ((6, 8, 3), 0)


def test_missing_root_empty_folder_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolderDataset(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images found .*\.jpg, \.jpeg, \.png, \.webp, \.bmp"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="neither"):
        ImageFolderDataset()
    with pytest.raises(ValueError, match="file_list"):
        ImageFolderDataset(tmp_path / "empty" / "readme.txt")


def test_corrupt_file_is_skipped_once_counted_and_replaced_by_next(tmp_path, caplog):
    root = tmp_path / "data"
    write(root / "0.png", 10)
    (root / "1.png").write_bytes(b"\x89PNG this is not really a png")
    write(root / "2.png", 30)
    ds = ImageFolderDataset(root)
    assert len(ds) == 3 and ds.num_skipped == 0
    with caplog.at_level(logging.WARNING, logger="encoders.data.image_folder"):
        assert red(ds[1][0]) == 30
        assert red(ds[1][0]) == 30
        assert red(ds[2][0]) == 30
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1.png" in warnings[0].getMessage()
    assert ds.num_skipped == 1 and [p.name for p in ds.skipped_files] == ["1.png"]


def test_bad_last_file_wraps_to_first_and_all_bad_raises(tmp_path):
    root = tmp_path / "data"
    write(root / "0.png", 10)
    (root / "1.png").write_bytes(b"")
    ds = ImageFolderDataset(root)
    assert red(ds[1][0]) == 10
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"junk")
    (bad / "y.jpg").write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="none of the 2 image files"):
        ImageFolderDataset(bad)[0]


def test_validate_reports_and_optionally_removes_bad_files(tmp_path):
    root = tmp_path / "data"
    write(root / "0.png", 10)
    (root / "1.jpg").write_bytes(b"junk")
    write(root / "2.png", 30)
    ds = ImageFolderDataset(root)
    assert [p.name for p in ds.validate()] == ["1.jpg"]
    assert len(ds) == 3 and ds.num_skipped == 1
    assert [p.name for p in ds.validate(remove=True)] == ["1.jpg"]
    assert len(ds) == 2 and ds.num_skipped == 0
    assert [red(ds[i][0]) for i in range(2)] == [10, 30]


def test_file_list_text_file_with_root_comments_and_absolute_paths(tree, tmp_path):
    outside = tmp_path / "elsewhere" / "x.png"
    write(outside, 77)
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text(f"# training split\nsub/c.PNG\n\n a.jpg \n{outside}\n", encoding="utf-8")
    ds = ImageFolderDataset(root=tree, file_list=listing)
    assert [red(ds[i][0]) for i in range(len(ds))] == [30, 10, 77]  # list order is kept


def test_file_list_relative_to_its_folder_without_root_and_python_sequence(tree, tmp_path):
    listing = tree / "list.txt"
    listing.write_text("z.bmp\nsub/deeper/d.webp\n", encoding="utf-8")
    assert [red(img) for img, _ in ImageFolderDataset(file_list=listing)] == [50, 40]
    seq = ImageFolderDataset(root=tree, file_list=["b.png", tree / "a.jpg"])
    assert [red(img) for img, _ in seq] == [20, 10]


def test_file_list_errors_and_missing_entries(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"file list not found: .*nolist\.txt"):
        ImageFolderDataset(file_list=tmp_path / "nolist.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty"):
        ImageFolderDataset(file_list=tmp_path / "empty.txt")
    ds = ImageFolderDataset(root=tree, file_list=["gone.png", "a.jpg"])
    assert red(ds[0][0]) == 10 and ds.num_skipped == 1


def test_bad_file_flags_are_shared_with_dataloader_workers(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        if i in (1, 4):
            (root / f"{i}.png").write_bytes(b"junk")
        else:
            write(root / f"{i}.png", 10 * i)
    ds = ImageFolderDataset(root, transform=lambda img: int(img[0, 0, 0]))
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    values = [int(b[0]) for b, _ in loader]
    assert values == [0, 20, 20, 30, 50, 50]
    assert ds.num_skipped == 2  # counted in the workers, visible here
    assert sorted(p.name for p in ds.skipped_files) == ["1.png", "4.png"]


def test_dataset_is_usable_as_tensor_source(tree):
    from encoders.data.augmentations import center_crop_transform

    ds = ImageFolderDataset(tree, transform=center_crop_transform(4, resize_size=6))
    batch, labels = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.shape == (5, 3, 4, 4) and torch.equal(labels, torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------------------
# LabelledImageFolder
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def labelled(tmp_path):
    root = tmp_path / "labelled"
    write(root / "dog" / "1.png", 11)
    write(root / "dog" / "nested" / "2.jpg", 12)
    write(root / "cat" / "1.png", 21)
    write(root / "bird" / "1.bmp", 31)
    write(root / "loose.png", 99)  # not in a class folder: ignored
    return root


def test_labelled_folder_classes_targets_and_items(labelled):
    ds = LabelledImageFolder(labelled)
    assert ds.classes == ["bird", "cat", "dog"]
    assert ds.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    assert ds.targets == [0, 1, 2, 2]
    assert [(red(img), y) for img, y in ds] == [(31, 0), (21, 1), (11, 2), (12, 2)]


def test_labelled_folder_explicit_classes_and_errors(labelled, tmp_path):
    ds = LabelledImageFolder(labelled, classes=["dog", "cat"])
    assert ds.targets == [0, 0, 1]
    with pytest.raises(FileNotFoundError, match="fish"):
        LabelledImageFolder(labelled, classes=["dog", "fish"])
    (labelled / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class"):
        LabelledImageFolder(labelled)
    assert LabelledImageFolder(labelled, allow_empty=True).classes[-1] == "empty_class"
    flat = tmp_path / "flat"
    write(flat / "a.png", 1)
    with pytest.raises(ValueError, match="ImageFolderDataset"):
        LabelledImageFolder(flat)
    with pytest.raises(FileNotFoundError):
        LabelledImageFolder(tmp_path / "missing")
