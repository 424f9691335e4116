"""An explicit registry of backbone presets: the 8 official DINOv2 backbones and small CPU presets.

``create_model("dinov2_vits14")`` builds the hub architecture; ``create_model(name, pretrained=True)``
downloads the official weights (torch hub cache); ``pretrained="path.pth"`` loads a local file.
Any constructor argument of :class:`~encoders.vision_transformer.DinoVisionTransformer` can be
overridden: ``create_model("vit_tiny_patch14", depth=4, num_register_tokens=2)``.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from encoders.checkpoint import extract_backbone_state_dict, infer_backbone_config, load_backbone_weights, sidecar_path
from encoders.released import is_release, released_path
from encoders.utils.io import CheckpointError, load_file
from encoders.vision_transformer import DinoVisionTransformer

logger = logging.getLogger(__name__)

DINOV2_BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture: constructor arguments, and the official weights URL if there are any."""

    name: str
    kwargs: dict[str, Any]
    description: str
    url: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a preset to the registry (names and aliases must be new)."""
    for key in (spec.name, *spec.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"model name {key!r} is already registered")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def list_models() -> list[str]:
    """Registered model names (without aliases), official backbones first."""
    return list(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for a name or alias; unknown names raise ``ValueError`` with suggestions."""
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        known = sorted([*_REGISTRY, *_ALIASES])
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown encoder {name!r}.{hint} Known encoders: {', '.join(list_models())}")
    return _REGISTRY[key]


def _constructor_args() -> set[str]:
    return set(inspect.signature(DinoVisionTransformer.__init__).parameters) - {"self"}


def create_model(name: str, pretrained: bool | str | os.PathLike = False, **overrides: Any) -> DinoVisionTransformer:
    """Build a registered backbone, optionally with weights.

    Args:
        name: a registered name or alias (see :func:`list_models`), e.g. ``"dinov2_vits14"``, ``"vits14"``,
            ``"vit_tiny_patch14"``.
        pretrained: ``False`` (random init), ``True`` (official weights from
            ``https://dl.fbaipublicfiles.com/dinov2/...``, cached by torch hub), the name of a release of this
            project (:mod:`encoders.released`, e.g. ``"semnav-objects"``), or a local file path (official
            ``*_pretrain.pth`` or a checkpoint exported by this project).
        **overrides: any constructor argument of ``DinoVisionTransformer`` (``depth``, ``embed_dim``,
            ``num_heads``, ``img_size``, ``patch_size``, ``num_register_tokens``, ``ffn_layer``, ...).

    Loading is strict: any missing, unexpected or mis-shaped key raises
    :class:`~encoders.utils.io.CheckpointError` listing them and the registered models the file fits.
    """
    spec = get_model_spec(name)
    unknown = set(overrides) - _constructor_args()
    if unknown:
        raise ValueError(
            f"unknown argument(s) {sorted(unknown)} for {spec.name}; valid: {', '.join(sorted(_constructor_args()))}"
        )
    kwargs = {**spec.kwargs, **overrides}
    model = DinoVisionTransformer(**kwargs)
    if pretrained is False or pretrained is None:
        return model
    if pretrained is True:
        state_dict = load_official_state_dict(spec.name)
        source = official_weights_url(spec.name)
    elif is_release(pretrained):
        source = str(released_path(str(pretrained), spec.name))
        state_dict = extract_backbone_state_dict(load_file(source))
    else:
        source = str(pretrained)
        state_dict = extract_backbone_state_dict(load_file(pretrained))
    load_backbone_weights(model, state_dict, source=source, fits=models_fitting(state_dict))
    logger.info("loaded %s weights from %s", spec.name, source)
    return model


def create_model_from_checkpoint(path: str | os.PathLike, **overrides: Any) -> DinoVisionTransformer:
    """Rebuild a backbone from a checkpoint alone: its JSON sidecar if present, else the registered
    model it fits, else an architecture inferred from the tensor shapes (``num_heads = embed_dim // 64``)."""
    meta_file = sidecar_path(path)
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        return create_model(meta["name"], pretrained=path, **{**meta.get("overrides", {}), **overrides})
    state_dict = extract_backbone_state_dict(load_file(path))
    fits = models_fitting(state_dict)
    if fits:
        return create_model(fits[0], pretrained=path, **overrides)
    cfg = infer_backbone_config(state_dict)
    cfg.setdefault("num_heads", max(1, cfg["embed_dim"] // 64))
    model = DinoVisionTransformer(**{**cfg, **overrides})
    load_backbone_weights(model, state_dict, source=str(path))
    return model


def official_weights_url(name: str) -> str:
    """``https://dl.fbaipublicfiles.com/dinov2/{arch}/{arch}[_reg4]_pretrain.pth`` for an official model."""
    spec = get_model_spec(name)
    if spec.url is None:
        official = [n for n, s in _REGISTRY.items() if s.url]
        raise ValueError(
            f"{spec.name} has no official weights; pretrained=True works for {', '.join(official)}. "
            f"Pass a local checkpoint path instead."
        )
    return spec.url


def load_official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Download (or read from the torch hub cache) the official weights of ``name``."""
    url = official_weights_url(name)
    try:
        sd = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        raise CheckpointError(
            f"could not download the official {name} weights from {url} ({e}). Without network access, "
            f"download the file elsewhere and pass it as a local file: create_model({name!r}, pretrained='/path/"
            f"{Path(url).name}') (or place it at {cache})."
        ) from e
    return extract_backbone_state_dict(sd)


def expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape of a registered model, built on the ``meta`` device (no memory)."""
    if name not in _SHAPE_CACHE:
        with torch.device("meta"):
            model = create_model(name)
        _SHAPE_CACHE[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _SHAPE_CACHE[name]


_SHAPE_CACHE: dict[str, dict[str, tuple[int, ...]]] = {}


def models_fitting(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Registered models whose keys and shapes match ``state_dict`` exactly."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    return [name for name in _REGISTRY if expected_shapes(name) == shapes]


# --------------------------------------------------------------------------------------- presets
def _official(arch: str, size: str, embed_dim: int, depth: int, num_heads: int, ffn_layer: str, reg: bool) -> None:
    kwargs = dict(
        img_size=518,
        patch_size=14,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4.0,
        init_values=1.0,
        ffn_layer=ffn_layer,
        num_register_tokens=4 if reg else 0,
        interpolate_antialias=reg,
        interpolate_offset=0.0 if reg else 0.1,
    )
    name = f"dinov2_{arch}14" + ("_reg" if reg else "")
    url = f"{DINOV2_BASE_URL}/dinov2_{arch}14/dinov2_{arch}14{'_reg4' if reg else ''}_pretrain.pth"
    register_model(
        ModelSpec(
            name=name,
            kwargs=kwargs,
            description=f"DINOv2 ViT-{size}/14{' with 4 registers' if reg else ''} (official hub architecture)",
            url=url,
            aliases=(f"{arch}14" + ("_reg" if reg else ""),),
        )
    )


for _reg in (False, True):
    _official("vits", "S", 384, 12, 6, "mlp", _reg)
    _official("vitb", "B", 768, 12, 12, "mlp", _reg)
    _official("vitl", "L", 1024, 24, 16, "mlp", _reg)
    _official("vitg", "g", 1536, 40, 24, "swiglufused", _reg)

# Small presets for CPU work. LayerScale on (init 1e-5, as in DINOv2 training configs); the positional
# grid is learned for 224x224 and interpolated to other sizes. The mini variants trade width against depth at about
# the same cost, or add 4 register tokens (Darcet et al., 2024), for the architecture comparison at 112 px.
for _patch in (8, 14, 16):
    for _name, _dim, _depth, _heads, _registers, _desc in (
        ("tiny", 192, 12, 3, 0, "ViT-Ti (5.5M params)"),
        ("mini", 128, 6, 4, 0, "a 6-block, 128-wide ViT (1.2M params) for few-minute CPU pretraining"),
        ("mini_reg", 128, 6, 4, 4, "vit_mini with 4 register tokens"),
        ("mini_wide", 192, 3, 3, 0, "a 3-block, 192-wide ViT (1.5M params): vit_mini's width against depth"),
        ("mini_deep", 96, 12, 3, 0, "a 12-block, 96-wide ViT (1.4M params): vit_mini's depth against width"),
        ("pico", 64, 2, 2, 0, "a 2-block, 64-wide ViT (0.1M params) for unit tests"),
    ):
        register_model(
            ModelSpec(
                name=f"vit_{_name}_patch{_patch}",
                kwargs=dict(
                    img_size=224,
                    patch_size=_patch,
                    embed_dim=_dim,
                    depth=_depth,
                    num_heads=_heads,
                    mlp_ratio=4.0,
                    init_values=1e-5,
                    ffn_layer="mlp",
                    num_register_tokens=_registers,
                ),
                description=f"{_desc}, patch {_patch}",
                aliases=(f"{_name}{_patch}",),
            )
        )

__all__ = [
    "CheckpointError",
    "ModelSpec",
    "create_model",
    "create_model_from_checkpoint",
    "get_model_spec",
    "list_models",
    "load_official_state_dict",
    "models_fitting",
    "official_weights_url",
    "register_model",
]
