"""Building blocks of the DINOv2 Vision Transformer, one per file (as in ``dinov2/layers``)."""

from encoders.layers.attention import Attention
from encoders.layers.block import Block
from encoders.layers.drop_path import DropPath, drop_add_residual_stochastic_depth
from encoders.layers.layer_scale import LayerScale
from encoders.layers.mlp import Mlp
from encoders.layers.patch_embed import PatchEmbed
from encoders.layers.swiglu_ffn import SwiGLUFFN, swiglu_hidden_features

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "SwiGLUFFN",
    "drop_add_residual_stochastic_depth",
    "swiglu_hidden_features",
]
