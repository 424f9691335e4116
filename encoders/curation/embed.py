"""Streaming, batched embedding of image files into an L2-normalised float16 matrix (in memory or a ``.npy`` memmap).

Images are decoded one batch at a time by a ``DataLoader`` (optionally in worker processes), so memory holds
one batch of images plus the embeddings (``N x D`` float16: 1M images x 384 dims = 768 MB on disk, memory-mapped).
Unreadable files get a zero row and ``valid = False`` (and one warning each, from the dataset).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from encoders.data.image_folder import ImageFolderDataset
from encoders.utils.progress import Progress

logger = logging.getLogger(__name__)

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


class _IndexedFiles(Dataset):
    """``dataset[i] -> (transform(image_i), i, readable)``; an unreadable file yields a stand-in and ``False``."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[np.ndarray], torch.Tensor]):
        self.files = ImageFolderDataset(file_list=[Path(p) for p in paths])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, bool]:
        image, used = self.files.load_image(index)  # the next readable file when ``index`` is unreadable
        return self.transform(image), index, used == index


@dataclass
class Embeddings:
    """``vectors`` ``(N, D)`` float16, unit rows (zero rows where ``valid`` is False), aligned with ``paths``."""

    paths: list[Path]
    vectors: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def embed_images(
    paths: Sequence[str | os.PathLike],
    embed_fn: EmbedFn,
    transform: Callable[[np.ndarray], torch.Tensor],
    output: str | os.PathLike | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    desc: str = "embed",
    progress: bool = True,
) -> Embeddings:
    """Embed image files in order.

    Args:
        paths: image files.
        embed_fn: ``(B, 3, H, W) -> (B, D)`` (e.g. the cls token of a frozen backbone); rows are L2-normalised here.
        transform: ``(H, W, 3) uint8 -> (3, H, W)`` float tensor (e.g. ``center_crop_transform``).
        output: ``.npy`` file to write the matrix to as a memmap (``None``: keep it in memory).
        batch_size, num_workers: DataLoader settings (images in memory: about ``batch_size * (1 + workers)``).
        device: where ``embed_fn`` runs.
    """
    if not paths:
        raise ValueError("no image files to embed; check the folder (searched for .jpg/.jpeg/.png/.webp/.bmp)")
    dataset = _IndexedFiles([Path(p) for p in paths], transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    n = len(dataset)
    vectors: np.ndarray | None = None
    valid = np.zeros(n, dtype=bool)
    bar = Progress(n, desc=desc, unit="img", disable=not progress)
    with torch.inference_mode():
        for images, index, readable in loader:
            emb = F.normalize(embed_fn(images.to(device)).float(), dim=1).cpu().numpy()  # (B, D)
            if vectors is None:
                vectors = _allocate(output, (n, emb.shape[1]))
            emb[~readable.numpy()] = 0.0
            vectors[index.numpy()] = emb.astype(np.float16)
            valid[index.numpy()] = readable.numpy()
            bar.update(len(index))
    bar.close()
    assert vectors is not None  # the loader yields at least one batch for a non-empty dataset
    if isinstance(vectors, np.memmap):
        vectors.flush()
    n_bad = int((~valid).sum())
    if n_bad:
        logger.warning("%d of %d files could not be read; they are excluded from curation", n_bad, n)
    return Embeddings([Path(p) for p in paths], vectors, valid)


def _allocate(output: str | os.PathLike | None, shape: tuple[int, int]) -> np.ndarray:
    if output is None:
        return np.zeros(shape, dtype=np.float16)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(output, mode="w+", dtype=np.float16, shape=shape)


def load_embeddings(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` written by :func:`embed_images`, memory-mapped read-only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}; embed the images first")
    return np.load(path, mmap_mode="r")


def iter_chunks(vectors: np.ndarray, chunk_size: int, device: torch.device | str = "cpu"):
    """Yield ``(start, (b, D) float32 tensor)`` blocks of a (memory-mapped) matrix, ``b <= chunk_size``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, vectors.shape[0], chunk_size):
        block = np.asarray(vectors[start : start + chunk_size], dtype=np.float32)
        yield start, torch.from_numpy(block).to(device)


__all__ = ["EmbedFn", "Embeddings", "embed_images", "iter_chunks", "load_embeddings"]
