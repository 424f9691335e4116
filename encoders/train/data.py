"""The pretraining data pipeline: image folder -> multi-crop augmentation -> masked collate -> batches.

Every random draw depends only on ``(seed, global stream position)``, never on DataLoader workers or on
when an iterator was created: sample ``p`` of the global stream (see
:class:`encoders.data.samplers.ShardedInfiniteSampler`) is always augmented with the generator
``SeedSequence([seed, p])``, and the masks of a batch come from ``random.Random((seed, first position))``.
So a resumed run sees exactly the batches of an uninterrupted one, with any number of workers, and a
switch of crop size (high-resolution phase) just rebuilds the loader at that iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from encoders.data.augmentations import AugmentationConfig, DataAugmentationDINO
from encoders.data.collate import MaskedMultiCropCollate
from encoders.data.image_folder import ImageFolderDataset
from encoders.data.samplers import ShardedInfiniteSampler
from encoders.preprocessing import upscale_warning
from encoders.train.config import CropsConfig, TrainLoopConfig

logger = logging.getLogger(__name__)


class PositionedSampler(Sampler[tuple[int, int]]):
    """Wrap a :class:`ShardedInfiniteSampler`: yield ``(global stream position, dataset index)``.

    Rank ``r`` of ``W`` consumes global positions ``r, r + W, ...``; ``start_index`` skips samples already used.
    """

    def __init__(self, sampler: ShardedInfiniteSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        s = self.sampler
        for k, index in enumerate(s, start=s.start_index):
            yield s.rank + k * s.world_size, index


class MultiCropSamples(Dataset):
    """``samples[(position, index)] -> (augmentation(image_index, rng(seed, position)), position)``.

    ``images[index]`` must return ``(uint8 RGB (H, W, 3), target)`` (an ``ImageFolderDataset`` without a
    transform), or ``((view_a, view_b), target)`` for sources that render two views of a sample. The position is
    returned as the target so the collate can seed the masks. With an augmentation ramp, the strength of sample
    ``p`` is that of its iteration, ``p // images_per_iteration``.
    """

    def __init__(
        self, images: Dataset, augmentation: DataAugmentationDINO, seed: int = 0, images_per_iteration: int = 1
    ):
        self.images = images
        self.augmentation = augmentation
        self.seed = int(seed)
        self.images_per_iteration = max(1, int(images_per_iteration))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict[str, Any], int]:
        position, index = key
        image, _ = self.images[index]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(position)]))
        strength = self.augmentation.photometric.strength_at(int(position) // self.images_per_iteration)
        return self.augmentation(image, rng=rng, strength=strength), int(position)


def _worker_init(_: int) -> None:
    """Sequential OpenCV and torch in workers (the workers are the parallelism). ``setNumThreads(0)``, not 1:
    with OpenCV's pthreads backend 1 can deadlock in a forked child (see ``encoders.data.augmentations``)."""
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)


class MultiCropDataPipeline:
    """Builds the batch iterator of a teacher-student run from a dataset of raw images.

    Args:
        images: dataset of ``(uint8 RGB image, target)`` (e.g. ``ImageFolderDataset(root)`` without transform).
        crops: crop sizes / scales (and the optional high-resolution phase).
        patch_size: backbone patch size (crops must be multiples of it).
        batch_size: images per rank and iteration.
        num_workers: DataLoader workers per rank.
        mask_ratio_tuple, mask_probability: iBOT masking (see :class:`MaskedMultiCropCollate`).
        seed: seed of the data order, the augmentations and the masks.
        rank, world_size: this process's shard of the stream.
        high_res_start: first iteration of the high-resolution phase (``None``: no such phase).
        pin_memory: pin batches (CUDA training).
        photometric: the photometric augmentation (default DINOv2's).
    """

    def __init__(
        self,
        images: Dataset,
        crops: CropsConfig,
        patch_size: int,
        batch_size: int,
        num_workers: int = 0,
        mask_ratio_tuple: tuple[float, float] = (0.1, 0.5),
        mask_probability: float = 0.5,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        high_res_start: int | None = None,
        pin_memory: bool = False,
        photometric: AugmentationConfig | None = None,
    ):
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.images = images
        self.crops = crops
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.high_res_start = high_res_start
        self.pin_memory = pin_memory
        self.collate = MaskedMultiCropCollate(patch_size, mask_ratio_tuple, mask_probability, seed=seed)
        self.augmentation = DataAugmentationDINO(
            global_crops_scale=crops.global_crops_scale,
            local_crops_scale=crops.local_crops_scale,
            local_crops_number=crops.local_crops_number,
            global_crops_size=crops.global_crops_size,
            local_crops_size=crops.local_crops_size,
            patch_size=patch_size,
            seed=seed,
            rank=rank,
            photometric=photometric,
        )
        self._warn_if_small(crops.global_crops_size)
        if high_res_start is not None:  # validate the high-res size now rather than at the end of training
            DataAugmentationDINO(
                global_crops_size=crops.high_res_global_crops_size,
                local_crops_size=crops.local_crops_size,
                patch_size=patch_size,
            )

    def _warn_if_small(self, crop_size: int, probes: int = 8) -> None:
        """Decode up to ``probes`` images spread over the dataset; warn if some must be upscaled a lot for the
        global crops (tiny images blur into flat blocks)."""
        n = len(self.images)
        small = []
        for index in sorted({int(i) for i in np.linspace(0, n - 1, min(probes, n))}):
            image, _ = self.images[index]
            if isinstance(image, (tuple, list)):  # a pair of views of one sample
                image = image[0]
            source = self.images.samples[index] if hasattr(self.images, "samples") else f"image {index}"
            warning = upscale_warning(source, image.shape, crop_size, "global crops")
            if warning is not None:
                small.append(warning)
        if small:
            logger.warning(
                "%d of %d images probed are much smaller than the crops; e.g. %s (or lower --crops.global-crops-size)",
                len(small),
                min(probes, n),
                small[0],
            )

    @classmethod
    def from_config(
        cls,
        cfg: TrainLoopConfig,
        patch_size: int,
        mask_ratio_tuple: tuple[float, float],
        mask_probability: float,
        rank: int = 0,
        world_size: int = 1,
        high_res_start: int | None = None,
        pin_memory: bool = False,
        images: Dataset | None = None,
    ) -> MultiCropDataPipeline:
        """The pipeline of a run config: ``ImageFolderDataset(cfg.data or cfg.file_list)`` (or ``images``, any
        dataset of raw images or view pairs, e.g. a procedural source) and its settings."""
        if images is None:
            if not cfg.data and not cfg.file_list:
                raise ValueError("no training data: pass --data DIR (a folder of images) or --file-list FILE")
            images = ImageFolderDataset(root=cfg.data or None, file_list=cfg.file_list or None, transform=None)
        return cls(
            images,
            cfg.crops,
            patch_size,
            cfg.train.batch_size_per_gpu,
            num_workers=cfg.train.num_workers,
            mask_ratio_tuple=mask_ratio_tuple,
            mask_probability=mask_probability,
            seed=cfg.train.seed,
            rank=rank,
            world_size=world_size,
            high_res_start=high_res_start,
            pin_memory=pin_memory,
            photometric=cfg.aug,
        )

    def global_crops_size_at(self, iteration: int) -> int:
        """Global crop side used at ``iteration`` (the high-resolution size from ``high_res_start`` on)."""
        if self.high_res_start is not None and iteration >= self.high_res_start:
            return self.crops.high_res_global_crops_size
        return self.crops.global_crops_size

    def loader(self, start_iteration: int = 0) -> Iterator[dict[str, Any]]:
        """An endless iterator of collated batches, starting at ``start_iteration`` (resume) with the crop
        size of that iteration."""
        size = self.global_crops_size_at(start_iteration)
        self.augmentation.set_global_crops_size(size)
        sampler = ShardedInfiniteSampler(
            len(self.images),
            rank=self.rank,
            world_size=self.world_size,
            seed=self.seed,
            shuffle=True,
            start_index=start_iteration * self.batch_size,
        )
        loader = DataLoader(
            MultiCropSamples(self.images, self.augmentation, self.seed, self.batch_size * self.world_size),
            batch_size=self.batch_size,
            sampler=PositionedSampler(sampler),
            num_workers=self.num_workers,
            collate_fn=self.collate,
            pin_memory=self.pin_memory,
            drop_last=True,
            worker_init_fn=_worker_init if self.num_workers > 0 else None,
            generator=torch.Generator().manual_seed(self.seed),  # never touches the global torch RNG
            prefetch_factor=2 if self.num_workers > 0 else None,
        )
        logger.info("data: %d images, global crops %dpx, from iteration %d", len(self.images), size, start_iteration)
        return iter(loader)
