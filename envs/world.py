"""The static world of the navigation environments: what every agent shares and nobody mutates during an episode.

:class:`NavWorld` holds the scenes, their variant images ``(S, V, H, W, 3)`` (colour variants, or the frames of a
noisy TV, :mod:`envs.tv`), the :class:`~envs.features.SceneFeatures` cache and the :class:`~envs.goals.ObjectGoals`.
Share one between environments freely (``world=`` of :class:`~envs.image_nav_env.ImageNavEnv` and
:class:`~envs.vec_env.ImageNavVecEnv`). Its constructors name the scene source:

- :meth:`NavWorld.from_generator`: procedural scenes;
- :meth:`NavWorld.from_folder`: photos from a folder;
- :meth:`NavWorld.from_scenes`: prebuilt :class:`~envs.scenes.Scene` records, optionally with their cached features.

The rest is shared (:class:`WorldOptions`): each renders the colour variants or TV frames
(:func:`scene_variant_images`), encodes every variant once into the feature cache (with an encoder instance, a
registry name + weights, or ``None`` for :data:`DEFAULT_ENCODER`; pixel and oracle observations need none) and, for
ObjectNav, builds and encodes the object goals.

The per-agent state over a world is in :mod:`envs.core`, its vectorised step in :mod:`envs.stepping`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from envs.features import SceneFeatures, StorageDType
from envs.goals import GoalPooling, ObjectGoals, build_object_goals
from envs.oracle import oracle_features, oracle_goal_vectors
from envs.scenes import SPLITS, Scene, SceneGenerator, SceneTooSmallError, smallest_image_size
from envs.scenes.folder import FolderSceneSource
from envs.scenes.variants import variant_colours, variant_images
from envs.tv import DEFAULT_TV_CELLS, DEFAULT_TV_FRAMES, TV, TV_MODES, TVMode, build_tv

logger = logging.getLogger(__name__)

TaskName = Literal["imagenav", "objectnav"]
ObservationMode = Literal["mean", "window", "pixels", "oracle"]
VariantMode = Literal["none", "episode", "tv"]

#: Encoder used when none is given in a feature mode: random init (fixed seed), for tests and API checks only.
DEFAULT_ENCODER = "vit_pico_patch14"
DEFAULT_ENCODER_SEED = 0


@dataclass(frozen=True)
class WorldOptions:
    """The keyword arguments every :class:`NavWorld` constructor takes besides its scene source.

    Attributes:
        task, observation: what the world serves; ``"mean"`` / ``"window"`` encode the scenes, ``"pixels"`` and
            ``"oracle"`` (ground truth, :mod:`envs.oracle`) need no encoder.
        encoder: a model (used where it is), a registry name (with ``encoder_weights``, a checkpoint) or ``None``
            (:data:`DEFAULT_ENCODER`); names without weights are randomly initialised under a fixed seed.
        device, storage_dtype, encode_batch_size, cache_block: how the features are computed and kept
            (:meth:`~envs.features.SceneFeatures.from_encoder`; ``cache_block`` for top-block refreshes).
        patch_size: the cell size without an encoder (default 14); with one it must be the encoder's.
        colour_variants, tv, tv_frames, tv_cells: the variant images (:func:`scene_variant_images`).
        goal_variants, goal_image_size, goal_pooling: the object goals (:func:`~envs.goals.build_object_goals`).
    """

    task: TaskName = "imagenav"
    observation: ObservationMode = "mean"
    encoder: nn.Module | str | None = None
    encoder_weights: str | os.PathLike | None = None
    device: str | None = None
    storage_dtype: StorageDType = "float32"
    encode_batch_size: int = 16
    cache_block: int | None = None
    patch_size: int | None = None
    colour_variants: int = 1
    tv: TVMode = "none"
    tv_frames: int = DEFAULT_TV_FRAMES
    tv_cells: int = DEFAULT_TV_CELLS
    goal_variants: int = 1
    goal_image_size: int | None = None
    goal_pooling: GoalPooling = "object"


class NavWorld:
    """The static data of a set of scenes (see the module docstring). Share one between environments freely.

    Attributes:
        scenes: the :class:`~envs.scenes.Scene` records (annotations; ``scenes[s].image`` is variant 0).
        images: ``(S, V, H, W, 3)`` uint8, the colour variants of every scene (``V = 1`` without variants).
        patch_size: pixels per grid cell; ``grid_shape = (H // patch_size, W // patch_size)``.
        variant_mode: ``"none"``, ``"episode"`` (a random colour variant per episode) or ``"tv"`` (variant ``p`` is
            the scene with TV frame ``p``, :mod:`envs.tv`).
        tv: the scenes' :class:`~envs.tv.TV` (``None`` without a TV).
        features: the scene :class:`~envs.features.SceneFeatures` (``None`` in pixel mode).
        object_goals: the :class:`~envs.goals.ObjectGoals` (``None`` for image-goal tasks).
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        images: np.ndarray,
        patch_size: int,
        *,
        variant_mode: VariantMode = "none",
        tv: TV | None = None,
        features: SceneFeatures | None = None,
        object_goals: ObjectGoals | None = None,
    ):
        if images.ndim != 5 or images.dtype != np.uint8 or len(images) != len(scenes):
            raise ValueError(f"images must be (S, V, H, W, 3) uint8 with S = {len(scenes)}, got {images.shape}")
        if images.shape[2] % patch_size or images.shape[3] % patch_size:
            raise ValueError(f"scene size {images.shape[2:4]} is not a multiple of the patch size {patch_size}")
        if features is not None:
            expected = (len(scenes), images.shape[1], images.shape[2] // patch_size, images.shape[3] // patch_size)
            if tuple(features.grids.shape[:4]) != expected or features.patch_size != patch_size:
                raise ValueError(
                    f"scene_features has grids {tuple(features.grids.shape[:4])} (patch {features.patch_size}) but the "
                    f"scenes need (S, V, h, w) = {expected} (patch {patch_size}); build it from the same scene images "
                    "(SceneFeatures.from_encoder(encoder, world.images)) or pass matching variant settings"
                )
        self.scenes = list(scenes)
        self.images = images
        self.patch_size = int(patch_size)
        self.variant_mode: VariantMode = variant_mode
        if (tv is not None) != (variant_mode == "tv") or (tv is not None and tv.n_frames != images.shape[1]):
            raise ValueError("a TV world needs variant_mode='tv' and one variant per TV frame")
        self.tv = tv
        self.features = features
        self.object_goals = object_goals

    @classmethod
    def from_generator(
        cls,
        split: str = "train",
        n_scenes: int = 4,
        *,
        scene_ids: Sequence[int] | None = None,
        image_size: int = 448,
        scene_seed: int = 0,
        generator: SceneGenerator | None = None,
        **options: Any,
    ) -> NavWorld:
        """Procedural scenes ``scene_ids`` (default ``range(n_scenes)``) of ``split`` from ``generator`` (default
        ``SceneGenerator(image_size, patch_size=patch, seed=scene_seed)``); ``options``: :class:`WorldOptions`."""

        if scene_ids is None and (n_scenes is None or n_scenes < 1):
            raise ValueError(f"n_scenes must be a positive number of procedural scenes, got {n_scenes}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        ids = [int(i) for i in (range(n_scenes) if scene_ids is None else scene_ids)]

        def generate(patch: int) -> list[Scene]:
            if generator is not None and generator.image_size % patch:
                raise ValueError(
                    f"the scene generator's image_size {generator.image_size} is not a multiple of the encoder's "
                    f"patch size {patch}"
                )
            default = functools.partial(SceneGenerator, patch_size=patch, seed=scene_seed)  # of an image size
            try:
                return (default(image_size) if generator is None else generator).generate_many(ids, split)
            except SceneTooSmallError as e:
                if generator is not None:
                    raise
                fits = smallest_image_size(ids, split, image_size + 1, default, patch)
                raise ValueError(
                    f"image_size={image_size} is too small for the default procedural scenes ({e}); the smallest "
                    f"image_size that fits these scenes is {fits}; or pass an envs.scenes.SceneGenerator(image_size="
                    f"{image_size}, ...) with fewer, smaller objects (its n_objects and object_size arguments)"
                ) from e

        return _build(generate, WorldOptions(**options), outline=getattr(generator, "outline", True))

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        n_scenes: int | None = 4,
        *,
        scene_ids: Sequence[int] | None = None,
        image_size: int = 448,
        **options: Any,
    ) -> NavWorld:
        """Photos ``scene_ids`` (default the first ``n_scenes``, ``None`` for all) of ``folder`` as ``image_size``
        scenes (:class:`~envs.scenes.FolderSceneSource`; image goals only); ``options``: :class:`WorldOptions`."""

        def load(patch: int) -> list[Scene]:
            source = FolderSceneSource(folder, image_size=image_size, patch_size=patch)
            total = len(source) if n_scenes is None else min(n_scenes, len(source))
            return [source.load(int(i)) for i in (range(total) if scene_ids is None else scene_ids)]

        return _build(load, WorldOptions(**options))

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene], features: SceneFeatures | None = None, **options: Any) -> NavWorld:
        """Prebuilt ``scenes``, optionally with ``features``, the :class:`~envs.features.SceneFeatures` of their variant
        images (used as is: no copy, refreshes are seen; ObjectNav still needs their encoder, for the goal images);
        ``options``: :class:`WorldOptions`."""
        return _build(lambda patch: scenes, WorldOptions(**options), features)

    @property
    def tv_mode(self) -> str:
        """The TV's mode (:data:`envs.tv.TV_MODES`), or ``"none"``."""
        return self.tv.mode if self.tv is not None else "none"

    @property
    def n_scenes(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_variants(self) -> int:
        return int(self.images.shape[1])

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.images.shape[2] // self.patch_size, self.images.shape[3] // self.patch_size

    @torch.no_grad()
    def refresh(self, encoder: nn.Module, batch_size: int = 16) -> None:
        """Recompute the scene grids (and object-goal features) in place after ``encoder`` changed."""
        if self.features is None:
            raise ValueError("this world has no features (pixel observations); nothing to refresh")
        self.features.refresh(encoder, batch_size)
        if self.object_goals is not None and self.object_goals.features is not None:
            self.object_goals.refresh(encoder, batch_size)

    def __repr__(self) -> str:
        h, w = self.grid_shape
        return (
            f"NavWorld(scenes={self.n_scenes}, variants={self.n_variants} ({self.variant_mode}"
            f"{', ' + self.tv_mode if self.tv is not None else ''}), grid={h}x{w}, "
            f"patch={self.patch_size}, features={self.features is not None}, "
            f"object_goals={self.object_goals is not None})"
        )


def _resolve_encoder(
    encoder: nn.Module | str | None, encoder_weights: str | os.PathLike | None = None, device: str | None = None
) -> nn.Module:
    """An encoder instance from an instance, a registry name (+ weights file) or ``None`` (:data:`DEFAULT_ENCODER`).

    Names without weights are built with random initialisation under a fixed seed (so default environments are
    reproducible) without touching the global torch RNG. Real use passes a pretrained encoder.
    """
    from encoders import create_model

    if isinstance(encoder, nn.Module):
        if encoder_weights is not None:
            raise ValueError(
                "encoder_weights is only used with an encoder name; load the weights into your model instead"
            )
        return encoder  # used where it is (the caller's model is never moved)
    name = DEFAULT_ENCODER if encoder is None else str(encoder)
    if encoder_weights is not None:
        model = create_model(name, pretrained=encoder_weights)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(DEFAULT_ENCODER_SEED)
            model = create_model(name)
        logger.info("using a randomly initialised %s encoder; pass a pretrained encoder for real use", name)
    return model.to(device or "cpu").eval()


def scene_variant_images(
    scenes: Sequence[Scene],
    colour_variants: int = 1,
    tv: TVMode = "none",
    tv_frames: int = DEFAULT_TV_FRAMES,
    tv_cells: int = DEFAULT_TV_CELLS,
    patch_size: int = 14,
) -> tuple[np.ndarray, VariantMode, TV | None]:
    """The ``(S, V, H, W, 3)`` variant images of ``scenes``, the variant mode and the scenes' TV.

    ``colour_variants = k > 1``: every object recoloured, ``V = k`` (episode mode; variant 0 has the original
    colours). ``tv`` (one of :data:`envs.tv.TV_MODES`): a ``tv_cells x tv_cells`` TV per scene, ``V = tv_frames``
    (variant ``p``: the scene with TV frame ``p``, :func:`envs.tv.build_tv`).
    """
    if colour_variants < 1:
        raise ValueError(f"colour_variants must be >= 1, got {colour_variants}")
    shapes = sorted({s.image.shape for s in scenes})
    if len(shapes) > 1:
        raise ValueError(
            f"the scenes have different sizes {shapes[:3]}; the environments need one size: use square scenes "
            "(FolderSceneSource mode='crop', the default) or one image_size"
        )
    if tv != "none":
        if tv not in TV_MODES:
            raise ValueError(f"tv must be 'none' or one of {TV_MODES}, got {tv!r}")
        if colour_variants > 1:
            raise ValueError("use either colour_variants (per episode) or a tv, not both")
        grid_shape = (shapes[0][0] // patch_size, shapes[0][1] // patch_size)
        images, screens = build_tv(scenes, tv, patch_size, grid_shape, tv_frames, tv_cells)
        return images, "tv", screens
    if colour_variants == 1:
        return np.stack([s.image for s in scenes])[:, None], "none", None
    return np.stack([variant_images(s, colour_variants) for s in scenes]), "episode", None


def _build(
    load: Callable[[int], Sequence[Scene]],
    o: WorldOptions,
    features: SceneFeatures | None = None,
    outline: bool = True,
) -> NavWorld:
    """The constructors' shared part: the encoder and patch size, the scenes ``load(patch)``, their variant images,
    the features (encoded once unless given) and, for ObjectNav, the object goals."""
    encoded = o.observation not in ("pixels", "oracle")
    model: nn.Module | None = None
    if encoded and features is not None and o.task == "objectnav" and o.encoder is None:
        raise ValueError(
            "ObjectNav with prebuilt scene_features also needs the encoder that built them (encoder=...), "
            "to encode the goal images"
        )
    if encoded and (features is None or o.task == "objectnav"):
        model = _resolve_encoder(o.encoder, o.encoder_weights, o.device)
        if features is not None and int(model.embed_dim) != features.dim:
            raise ValueError(
                f"encoder width {model.embed_dim} differs from the scene_features width {features.dim}; "
                "pass the encoder that built scene_features"
            )
    if model is not None:
        patch = int(model.patch_size)
    elif features is not None:
        patch = features.patch_size
    else:
        patch = 14 if o.patch_size is None else int(o.patch_size)
    if o.patch_size is not None and int(o.patch_size) != patch:
        raise ValueError(f"patch_size={o.patch_size} does not match the encoder's patch size {patch}; omit patch_size")
    scenes = list(load(patch))
    if not scenes:
        raise ValueError("no scenes: pass scenes, n_scenes >= 1, scene_ids, or a scene_folder with images")
    images, variant_mode, screens = scene_variant_images(
        scenes, o.colour_variants, o.tv, o.tv_frames, o.tv_cells, patch
    )
    grid_shape = (images.shape[2] // patch, images.shape[3] // patch)
    if o.observation == "oracle":
        if features is not None:
            raise ValueError("observation='oracle' serves ground-truth features; drop scene_features")
        features = oracle_features(scenes, images.shape[1], patch, grid_shape, screens)
    elif encoded and features is None:
        features = SceneFeatures.from_encoder(
            model, images, o.encode_batch_size, o.device, o.storage_dtype, o.cache_block
        )
    elif features is not None and features.images is not None and features.images.shape == images.shape:
        images = features.images  # share the caller's array instead of keeping a second copy
    object_goals = None
    if o.task == "objectnav":
        avoid = [[ob.colour for ob in s.objects] + _variant_colours(s, images.shape[1], variant_mode) for s in scenes]
        object_goals = build_object_goals(
            scenes, patch, grid_shape, o.goal_variants, o.goal_image_size, o.goal_pooling, avoid, outline=outline
        )
        if o.observation == "oracle":
            object_goals.vectors = oracle_goal_vectors(object_goals.goal_class, object_goals.n_variants)
        elif encoded:  # with the cache's settings
            object_goals.encode(model, o.encode_batch_size, o.device, features.storage_dtype, features.cache_block)
    return NavWorld(
        scenes, images, patch, variant_mode=variant_mode, tv=screens, features=features, object_goals=object_goals
    )


def _variant_colours(scene: Scene, n_variants: int, mode: VariantMode) -> list:
    """Colours the scene's objects take in its colour variants (goal colours avoid them too)."""
    if mode != "episode" or n_variants < 2:
        return []
    return [c for v in range(1, n_variants) for c in variant_colours(scene, v).values()]


__all__ = [
    "DEFAULT_ENCODER",
    "NavWorld",
    "ObservationMode",
    "TaskName",
    "WorldOptions",
    "scene_variant_images",
]
