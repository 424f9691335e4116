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
from encoders.data.image_folder import IMAGE_EXTENSIONS, ImageFolderDataset, LabelledImageFolder, scan_image_files
from encoders.data.samplers import ShardedInfiniteSampler

# Masking and collate re-exports (owned by the masking/collate modules) go below this line.

__all__ = [
    "IMAGE_EXTENSIONS",
    "NORMALIZED_MAX",
    "NORMALIZED_MIN",
    "CenterCropTransform",
    "CropParams",
    "DataAugmentationDINO",
    "ImageFolderDataset",
    "LabelledImageFolder",
    "ShardedInfiniteSampler",
    "center_crop_transform",
    "scan_image_files",
]
