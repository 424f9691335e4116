"""The batched navigation environment of a :class:`~techniques.rl_navigation.config.TwoPhaseConfig`, for
training (train split) and evaluation (held-out splits), built the same way in both."""

from __future__ import annotations

from envs.scenes import SceneGenerator
from envs.vec_env import ImageNavVecEnv
from techniques.rl_navigation.config import TwoPhaseConfig, env_kwargs, nav_config, scene_generator_kwargs
from techniques.rl_navigation.semantic_encoder import SemanticEncoder


def make_env(
    cfg: TwoPhaseConfig,
    encoder: SemanticEncoder,
    split: str = "train",
    n_scenes: int | None = None,
    n_envs: int | None = None,
    cache_top_layers: int | None = None,
    render_scale: int = 1,
) -> ImageNavVecEnv:
    """An :class:`ImageNavVecEnv` over procedural scenes ``0..n_scenes-1`` of ``split``.

    Args:
        cfg: task rules, scene size and seed, time limit (``env_kwargs``).
        encoder: encodes the scenes once, under its autocast dtype (not used by pixel and oracle observations, which
            still take its patch size).
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_scenes: default ``cfg.n_train_scenes`` for train, ``cfg.n_eval_scenes`` otherwise.
        n_envs: agents (default ``cfg.n_envs``).
        cache_top_layers: keep the tokens entering the top ``n`` blocks for phase-2 refreshes.
        render_scale: integer upscaling of rendered frames.
    """
    encoded = nav_config(cfg).needs_encoder  # pixel and oracle observations need no encoder, only its patch size
    if n_scenes is None:
        n_scenes = cfg.n_train_scenes if split == "train" else cfg.n_eval_scenes
    generator = SceneGenerator(**scene_generator_kwargs(cfg.image_size, encoder.patch_size, cfg.scene_seed))
    with encoder.autocast():
        return ImageNavVecEnv(
            cfg.n_envs if n_envs is None else n_envs,
            encoder=encoder.backbone if encoded else None,
            patch_size=None if encoded else encoder.patch_size,
            split=split,
            n_scenes=n_scenes,
            scene_generator=generator,
            image_size=cfg.image_size,
            cache_block=None if cache_top_layers is None else encoder.n_blocks - cache_top_layers,
            encode_batch_size=cfg.encode_batch_size,
            storage_dtype=cfg.storage_dtype,
            render_scale=render_scale,
            **env_kwargs(cfg),
        )


__all__ = ["make_env"]
