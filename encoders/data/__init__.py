"""Data for pretraining and evaluation: image-folder datasets, DINOv2 multi-crop augmentation, sharded
infinite sampling, and (``masking``, ``collate``) iBOT block masks and batch collation."""

from encoders.data.augmentations import (
    NORMALIZED_MAX,
    NORMALIZED_MIN,
    CenterCropTransform,
    CropParams,
    DataAugmentationDINO,
    center_crop_transform,
)
from encoders.data.collate import MaskedMultiCropCollate, collate_data_and_cast, pack_masks
from encoders.data.image_folder import ImageFolderDataset, LabelledImageFolder
from encoders.data.masking import MaskingGenerator
from encoders.data.samplers import ShardedInfiniteSampler

__all__ = [
    "NORMALIZED_MAX",
    "NORMALIZED_MIN",
    "CenterCropTransform",
    "CropParams",
    "DataAugmentationDINO",
    "ImageFolderDataset",
    "LabelledImageFolder",
    "MaskedMultiCropCollate",
    "MaskingGenerator",
    "ShardedInfiniteSampler",
    "center_crop_transform",
    "collate_data_and_cast",
    "pack_masks",
]
