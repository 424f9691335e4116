"""DINOv2-compatible ViT backbones, self-supervised pretraining, distillation, evaluation and curation.

The encoder contract used by the rest of semnav is :meth:`DinoVisionTransformer.forward_features`,
which returns ``{x_norm_clstoken, x_norm_regtokens, x_norm_patchtokens, x_prenorm, masks}``.
"""

from encoders.checkpoint import save_backbone
from encoders.registry import (
    create_model,
    create_model_from_checkpoint,
    get_model_spec,
    list_models,
    official_weights_url,
)
from encoders.utils.io import CheckpointError, DiskFullError, atomic_save
from encoders.vision_transformer import DinoVisionTransformer

__all__ = [
    "CheckpointError",
    "DinoVisionTransformer",
    "DiskFullError",
    "atomic_save",
    "create_model",
    "create_model_from_checkpoint",
    "get_model_spec",
    "list_models",
    "official_weights_url",
    "save_backbone",
]
