"""Datasets over folders of image files, decoded with OpenCV to RGB ``uint8`` ``(H, W, 3)`` arrays.

- :class:`ImageFolderDataset`: unlabelled images for self-supervised pretraining, found by a recursive
  scan of a folder or listed in a file list; ``dataset[i] -> (transform(image), 0)``.
- :class:`LabelledImageFolder`: one sub-folder per class (``root/<class>/**/<image>``) for k-NN and
  linear-probe evaluation; ``dataset[i] -> (transform(image), class_index)``.

Unreadable files. Decoding every file while scanning would make start-up slow on big folders, so a file
is only checked when it is loaded. When ``__getitem__`` meets a file that is missing, empty, corrupt or
not an image, it logs ONE warning for that file, counts it (``num_skipped``), and returns the next
readable sample in file order (wrapping around at the end); known-bad files are skipped without being
read again. The bad-file flags live in shared memory, so DataLoader workers share them: the count seen
in the main process includes files skipped in workers, and a file is reported once (two workers that hit
the same file at the same instant may both warn). :meth:`ImageFolderDataset.validate` decodes every file
up front (fine for small folders and tests) and can drop the bad ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from encoders.preprocessing import IMAGE_EXTENSIONS, normalize_extensions, read_image_rgb, scan_image_files

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def read_file_list(file_list: PathLike | Sequence[PathLike], root: Path | None) -> list[Path]:
    """Resolve a file list to paths.

    ``file_list`` is either a text file (UTF-8, one path per line, blank lines and lines starting with
    ``#`` ignored) or a Python sequence of paths. Relative paths are resolved against ``root`` when it is
    given; otherwise against the folder of the text file (or the working directory for a sequence).
    """
    if isinstance(file_list, (str, os.PathLike)):
        list_path = Path(file_list).expanduser()
        if not list_path.is_file():
            raise FileNotFoundError(
                f"file list not found: {list_path}; pass a text file with one image path per line, "
                "or a Python list of paths."
            )
        lines = (line.strip() for line in list_path.read_text(encoding="utf-8").splitlines())
        entries: list[PathLike] = [line for line in lines if line and not line.startswith("#")]
        base = root if root is not None else list_path.parent
        source = str(list_path)
    else:
        entries = list(file_list)
        base = root
        source = "the given sequence"
    if not entries:
        raise ValueError(f"the file list ({source}) is empty; add one image path per line.")
    paths = [Path(e).expanduser() for e in entries]
    return [p if p.is_absolute() or base is None else base / p for p in paths]


def _check_root(root: PathLike) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image folder not found: {path}; check the path passed as root/--data.")
    if not path.is_dir():
        raise ValueError(
            f"root must be a folder of images, but {path} is a file; to train from a list of paths pass it "
            "as file_list instead."
        )
    return path


class _ImageFiles(Dataset):
    """Shared loading and bad-file policy of the image-folder datasets."""

    def __init__(self, samples: list[Path], targets: list[int], transform: Callable[[np.ndarray], Any] | None):
        self.samples = samples
        self.targets = targets
        self.transform = transform
        # One flag per file, in shared memory so that DataLoader workers (fork or spawn) see each other's.
        self._bad = torch.zeros(len(samples), dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_skipped(self) -> int:
        """Number of files found unreadable so far (in this process and its DataLoader workers)."""
        return int(self._bad.sum())

    @property
    def skipped_files(self) -> list[Path]:
        """The files found unreadable so far."""
        return [self.samples[i] for i in torch.nonzero(self._bad).flatten().tolist()]

    def _mark_bad(self, index: int, error: Exception) -> None:
        if self._bad[index]:
            return
        self._bad[index] = 1
        logger.warning("skipping unreadable image: %s", error)

    def load_image(self, index: int) -> tuple[np.ndarray, int]:
        """Decode sample ``index`` (or the next readable one, see module docstring) -> (``(H, W, 3)`` uint8, index)."""
        n = len(self.samples)
        for step in range(n):
            j = (index + step) % n
            if self._bad[j]:
                continue
            try:
                return read_image_rgb(self.samples[j]), j
            except (FileNotFoundError, ValueError) as e:
                self._mark_bad(j, e)
        raise RuntimeError(
            f"none of the {n} image files could be decoded (e.g. {self.samples[0]}); "
            "check that they are images in a format OpenCV reads."
        )

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images.")
        image, j = self.load_image(index % n)
        return (self.transform(image) if self.transform is not None else image), self.targets[j]

    def validate(self, remove: bool = False) -> list[Path]:
        """Decode every file once; returns the unreadable ones (each warned once and counted).

        Args:
            remove: also drop the unreadable files from the dataset (``len`` shrinks, ``num_skipped``
                restarts at 0).

        Decoding costs roughly 1-10 ms per image, so prefer the lazy skipping for large folders.
        """
        for i, path in enumerate(self.samples):
            if self._bad[i]:
                continue
            try:
                read_image_rgb(path)
            except (FileNotFoundError, ValueError) as e:
                self._mark_bad(i, e)
        bad = self.skipped_files
        logger.info("validated %d image files: %d unreadable", len(self.samples), len(bad))
        if remove and bad:
            keep = (self._bad == 0).nonzero().flatten().tolist()
            if not keep:
                raise RuntimeError(f"none of the {len(self.samples)} image files could be decoded.")
            self.samples = [self.samples[i] for i in keep]
            self.targets = [self.targets[i] for i in keep]
            self._bad = torch.zeros(len(self.samples), dtype=torch.uint8).share_memory_()
        return bad


class ImageFolderDataset(_ImageFiles):
    """Unlabelled images from a folder tree or a file list, for self-supervised pretraining.

    Args:
        root: folder scanned recursively for files with one of ``extensions`` (sorted, deterministic).
            With ``file_list``, only used to resolve relative paths in the list.
        file_list: instead of scanning, a text file with one image path per line (UTF-8; blank lines and
            ``#`` comments ignored) or a sequence of paths. Relative paths are resolved against ``root``
            if given, else against the text file's folder (or the working directory for a sequence).
            Entries are used as listed (no extension filter).
        transform: callable applied to the ``(H, W, 3)`` uint8 RGB array, e.g. ``DataAugmentationDINO``.
        extensions: file extensions searched when scanning (case-insensitive).

    ``dataset[i]`` returns ``(transform(image), 0)``: label 0 for unlabelled data, as the official
    DINOv2 code does. Unreadable files are skipped as described in the module docstring.

    Raises:
        FileNotFoundError: ``root`` or the file-list file does not exist.
        ValueError: neither ``root`` nor ``file_list`` given, ``root`` is a file, or no image was found.
    """

    def __init__(
        self,
        root: PathLike | None = None,
        file_list: PathLike | Sequence[PathLike] | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ):
        if root is None and file_list is None:
            raise ValueError("ImageFolderDataset needs root (a folder of images) or file_list (paths); got neither.")
        self.root = _check_root(root) if root is not None else None
        self.extensions = normalize_extensions(extensions)
        if file_list is not None:
            samples = read_file_list(file_list, self.root)
            source = f"file list {file_list}" if isinstance(file_list, (str, os.PathLike)) else "a list of paths"
        elif self.root is not None:
            samples = scan_image_files(self.root, self.extensions)
            source = str(self.root)
            if not samples:
                raise ValueError(
                    f"no images found under {self.root} (searched recursively for {', '.join(self.extensions)}); "
                    "add images, or pass extensions=... for other formats."
                )
        super().__init__(samples, [0] * len(samples), transform)
        logger.info("ImageFolderDataset: %d images from %s", len(samples), source)

    def __repr__(self) -> str:
        source = f"root={str(self.root)!r}" if self.root is not None else "file_list"
        return f"{type(self).__name__}({source}, num_images={len(self)}, num_skipped={self.num_skipped})"


class LabelledImageFolder(_ImageFiles):
    """Labelled images laid out as one sub-folder per class: ``root/<class_name>/**/<image>``.

    Args:
        root: folder whose sub-folders are the classes (hidden folders ignored). Images directly in
            ``root`` are ignored.
        transform: callable applied to the ``(H, W, 3)`` uint8 RGB array.
        extensions: file extensions searched (case-insensitive), recursively inside each class folder.
        classes: explicit class names (sub-folder names) in index order, e.g. the ``classes`` of the
            training split when building the validation split; default: all sub-folders, sorted.
        allow_empty: keep classes without images instead of raising.

    Attributes:
        classes: class names; ``classes[k]`` is the name of class index ``k``.
        class_to_idx: name -> index.
        targets: class index of every sample (aligned with ``samples``).

    ``dataset[i]`` returns ``(transform(image), class_index)``; unreadable files are skipped as described
    in the module docstring.
    """

    def __init__(
        self,
        root: PathLike,
        transform: Callable[[np.ndarray], Any] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        classes: Sequence[str] | None = None,
        allow_empty: bool = False,
    ):
        self.root = _check_root(root)
        self.extensions = normalize_extensions(extensions)
        if classes is None:
            classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise ValueError(
                    f"no class folders in {self.root}; LabelledImageFolder expects root/<class_name>/<images>. "
                    "For unlabelled images use ImageFolderDataset."
                )
        else:
            classes = list(classes)
            missing = [c for c in classes if not (self.root / c).is_dir()]
            if missing:
                raise FileNotFoundError(f"class folders not found in {self.root}: {missing}; check classes=...")
        self.classes: list[str] = list(classes)
        self.class_to_idx: dict[str, int] = {c: k for k, c in enumerate(self.classes)}
        samples: list[Path] = []
        targets: list[int] = []
        empty: list[str] = []
        for k, name in enumerate(self.classes):
            files = scan_image_files(self.root / name, self.extensions)
            if not files:
                empty.append(name)
            samples.extend(files)
            targets.extend([k] * len(files))
        if empty and not allow_empty:
            raise ValueError(
                f"class folders without images ({', '.join(self.extensions)}) in {self.root}: {empty}; "
                "add images, remove the folders, or pass allow_empty=True."
            )
        if not samples:
            raise ValueError(f"no images found in the class folders of {self.root}.")
        super().__init__(samples, targets, transform)
        logger.info("LabelledImageFolder: %d images in %d classes from %s", len(samples), len(self.classes), self.root)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, num_images={len(self)}, "
            f"num_classes={len(self.classes)}, num_skipped={self.num_skipped})"
        )


__all__ = ["ImageFolderDataset", "LabelledImageFolder", "read_file_list"]
