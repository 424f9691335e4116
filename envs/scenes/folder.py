"""Photo folders as scenes: every readable image under a folder becomes a :class:`~envs.scenes.types.Scene`.

Photos are decoded with :func:`encoders.preprocessing.read_image_rgb` (OpenCV, RGB) and brought to a size the
encoder can patchify: ``mode="crop"`` scales the shorter side to ``image_size`` and centre-crops an
``image_size x image_size`` square; ``mode="resize"`` keeps the aspect ratio, scales the longer side to
``image_size`` and rounds both sides to multiples of ``patch_size``
(:func:`encoders.preprocessing.resize_to_multiple`), so scenes may be non-square.
Photo scenes have no annotations (``objects == []``), ``split == "folder"``, ``background == "photo"`` and
``source`` = the file path; they cannot be recoloured.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from encoders.preprocessing import (
    IMAGE_EXTENSIONS,
    read_image_rgb,
    resize_to_multiple,
    scan_image_files,
    upscale_warning,
)
from envs.scenes.types import Scene

logger = logging.getLogger(__name__)


def fit_photo(
    image: np.ndarray, image_size: int, patch_size: int, mode: Literal["crop", "resize"] = "crop"
) -> np.ndarray:
    """Resize/crop an ``(H, W, 3) uint8`` photo as described in the module docstring -> ``(H', W', 3) uint8``."""
    h, w = image.shape[:2]
    if mode == "crop":
        scale = image_size / min(h, w)
        new_h, new_w = max(image_size, round(h * scale)), max(image_size, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        resized = cv2.resize(image, (new_w, new_h), interpolation=interp) if (new_h, new_w) != (h, w) else image
        top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
        return np.ascontiguousarray(resized[top : top + image_size, left : left + image_size])
    if max(h, w) < image_size:  # upscale small photos so that the longer side reaches image_size
        scale = image_size / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resize_to_multiple(image, patch_size, "resize", max_side=image_size))


class FolderSceneSource:
    """Scenes from a folder of photos (searched recursively for jpg/jpeg/png/webp/bmp, sorted by path).

    Arguments:
        root: the folder.
        image_size: side of the square scene (``"crop"``) or longer side (``"resize"``); a multiple of
            ``patch_size``.
        patch_size: the encoder's patch size.
        mode: ``"crop"`` (square, centre crop) or ``"resize"`` (aspect kept, sides multiples of the patch).
        validate: decode every file once here and skip unreadable ones with one warning each, so that
            ``load`` never fails and indices are stable. With ``False`` start-up is instant and ``load`` raises
            ``ValueError`` for a bad file.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is not a folder, holds no readable image, or the sizes are inconsistent.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 448,
        patch_size: int = 14,
        mode: Literal["crop", "resize"] = "crop",
        validate: bool = True,
    ):
        if patch_size < 1 or image_size < patch_size or image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a positive multiple of patch_size ({patch_size}); "
                f"e.g. {max(1, round(image_size / max(patch_size, 1))) * max(patch_size, 1)}"
            )
        if mode not in ("crop", "resize"):
            raise ValueError(f"mode must be 'crop' or 'resize', got {mode!r}")
        path = Path(root).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"photo folder not found: {path}; pass an existing folder of images")
        if not path.is_dir():
            raise ValueError(f"{path} is a file, not a folder; pass the folder that contains the photos")
        files = scan_image_files(path)
        self.skipped: list[Path] = []
        if validate:
            good = []
            for f in files:
                try:
                    read_image_rgb(f)
                except (OSError, ValueError) as e:
                    logger.warning("skipping unreadable photo %s: %s", f, e)
                    self.skipped.append(f)
                else:
                    good.append(f)
            files = good
        if not files:
            extra = f" ({len(self.skipped)} unreadable files skipped)" if self.skipped else ""
            raise ValueError(
                f"no readable images found under {path}{extra}; add photos with one of the extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}"
            )
        self.root = path
        self.files: list[Path] = files
        self.image_size = int(image_size)
        self.patch_size = int(patch_size)
        self.mode = mode
        self._warned = False  # one upscaling warning per source

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (
            f"FolderSceneSource({str(self.root)!r}, {len(self)} photos, image_size={self.image_size}, "
            f"mode={self.mode!r})"
        )

    def load(self, index: int) -> Scene:
        """Photo ``index`` as a scene (``image`` ``(H, W, 3) uint8`` RGB, no objects)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} photos")
        index %= len(self)
        photo = read_image_rgb(self.files[index])
        if not self._warned:
            side = "shorter" if self.mode == "crop" else "longer"
            warning = upscale_warning(self.files[index], photo.shape, self.image_size, "scenes", side)
            if warning is not None:
                logger.warning("%s (warned once per folder)", warning)
                self._warned = True
        image = fit_photo(photo, self.image_size, self.patch_size, self.mode)
        source = str(self.files[index])
        return Scene(image, [], background="photo", split="folder", scene_id=index, layout=None, source=source)

    def __getitem__(self, index: int) -> Scene:
        return self.load(index)

    def __iter__(self):
        return (self.load(i) for i in range(len(self)))
