"""The static world of the navigation environments: what every agent shares and nobody mutates during an episode.

- :class:`NavWorld`: the scenes, their variant images ``(S, V, H, W, 3)`` (colour variants, or the frames of a noisy
  TV, :mod:`envs.tv`), the
  :class:`~envs.features.SceneFeatures` cache and the :class:`~envs.goals.ObjectGoals`. Share one between
  environments freely (``world=`` of :class:`~envs.image_nav_env.ImageNavEnv` and
  :class:`~envs.vec_env.ImageNavVecEnv`).
- :func:`build_world` makes one from a scene source (prebuilt ``scenes``, a photo folder or the procedural
  generator, see :func:`load_scenes`) and an encoder (an instance, a registry name + weights, or ``None`` for
  :data:`DEFAULT_ENCODER`, see :func:`resolve_encoder`): it loads the scenes, renders their colour variants or TV
  frames (:func:`scene_variant_images`), encodes every variant once into the feature cache and, for ObjectNav,
  builds and encodes the object goals. Pixel observations need no encoder.
- Cache: worlds built from names only (no model instance, weights file, prebuilt scenes or folder) are
  deterministic, so :func:`build_world` keeps the last few in-process and returns the shared one for the same
  arguments (such a world is marked ``memoised`` and cannot be refreshed).

The per-agent state over a world is in :mod:`envs.core`, its vectorised step in :mod:`envs.stepping`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from envs.features import SceneFeatures, StorageDType
from envs.goals import GoalPooling, ObjectGoals, build_object_goals
from envs.oracle import oracle_features, oracle_goal_vectors
from envs.scenes import SPLITS, Scene, SceneGenerator, SceneTooSmallError, smallest_image_size, variant_images
from envs.tv import DEFAULT_TV_CELLS, DEFAULT_TV_FRAMES, TV, TV_MODES, TVMode, build_tv

logger = logging.getLogger(__name__)

TaskName = Literal["imagenav", "objectnav"]
ObservationMode = Literal["mean", "window", "pixels", "oracle"]
VariantMode = Literal["none", "episode", "tv"]

#: Encoder used when none is given in a feature mode: random init (fixed seed), for tests and API checks only.
DEFAULT_ENCODER = "vit_pico_patch14"
DEFAULT_ENCODER_SEED = 0


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
        self.memoised = False  # set by build_world for shared default worlds

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
        if self.memoised:
            raise ValueError(
                "this world is a shared default built from an encoder name; to fine-tune, build the environment with "
                "your encoder instance (encoder=model, cache_block=...) so that it owns its feature cache"
            )
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


def resolve_encoder(
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


def load_scenes(
    *,
    split: str = "train",
    n_scenes: int | None = 4,
    scene_ids: Sequence[int] | None = None,
    image_size: int = 448,
    patch_size: int = 14,
    scene_seed: int = 0,
    scene_generator: SceneGenerator | None = None,
    scene_folder: str | os.PathLike | None = None,
) -> list[Scene]:
    """Scenes from a photo folder (``scene_folder``) or the procedural generator.

    Procedural: ids ``scene_ids`` (default ``range(n_scenes)``) of ``split`` from ``scene_generator`` (default
    ``SceneGenerator(image_size, patch_size=patch_size, seed=scene_seed)``). Folder: images ``scene_ids``
    (default the first ``n_scenes``, ``None`` for all) of :class:`envs.scenes.FolderSceneSource`.
    """
    if scene_folder is not None:
        from envs.scenes import FolderSceneSource

        source = FolderSceneSource(scene_folder, image_size=image_size, patch_size=patch_size)
        if scene_ids is None:
            total = len(source)
            scene_ids = range(total if n_scenes is None else min(n_scenes, total))
        return [source.load(int(i)) for i in scene_ids]
    if scene_ids is None:
        if n_scenes is None or n_scenes < 1:
            raise ValueError(f"n_scenes must be a positive number of procedural scenes, got {n_scenes}")
        scene_ids = range(n_scenes)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if scene_generator is not None:
        if scene_generator.image_size % patch_size:
            raise ValueError(
                f"the scene generator's image_size {scene_generator.image_size} is not a multiple of the encoder's "
                f"patch size {patch_size}"
            )
        return scene_generator.generate_many([int(i) for i in scene_ids], split)
    try:
        return SceneGenerator(image_size=image_size, patch_size=patch_size, seed=scene_seed).generate_many(
            [int(i) for i in scene_ids], split
        )
    except SceneTooSmallError as e:
        fits = smallest_image_size(
            scene_ids,
            split,
            image_size + 1,
            lambda size: SceneGenerator(image_size=size, patch_size=patch_size, seed=scene_seed),
            patch_size,
        )
        raise ValueError(
            f"image_size={image_size} is too small for the default procedural scenes ({e}); the smallest image_size "
            f"that fits these scenes is {fits}; or pass a scene_generator=envs.scenes.SceneGenerator(image_size="
            f"{image_size}, ...) with fewer, smaller objects (its n_objects and object_size arguments)"
        ) from e


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


#: Worlds built from names only (no model instance, weights file, prebuilt scenes or folder) are deterministic, so
#: the most recent few are kept and shared: ``gymnasium.make`` of a registered id with defaults encodes once.
_WORLD_CACHE: OrderedDict[tuple, NavWorld] = OrderedDict()
_WORLD_CACHE_SIZE = 8
_UNCACHEABLE = ("scenes", "scene_features", "scene_generator", "scene_folder", "encoder_weights")


def _world_key(kwargs: dict[str, Any]) -> tuple | None:
    if any(kwargs.get(name) is not None for name in _UNCACHEABLE) or isinstance(kwargs.get("encoder"), nn.Module):
        return None
    items = []
    for name, value in sorted(kwargs.items()):
        if isinstance(value, (list, tuple, range)):
            value = tuple(value)
        try:
            hash(value)
        except TypeError:
            return None
        items.append((name, value))
    return tuple(items)


def _memoised(fn):
    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> NavWorld:
        key = _world_key(kwargs)
        if key is not None and key in _WORLD_CACHE:
            _WORLD_CACHE.move_to_end(key)
            return _WORLD_CACHE[key]
        world = fn(**kwargs)
        if key is not None:
            world.memoised = True
            _WORLD_CACHE[key] = world
            while len(_WORLD_CACHE) > _WORLD_CACHE_SIZE:
                _WORLD_CACHE.popitem(last=False)
        return world

    return wrapper


@_memoised
def build_world(
    *,
    task: TaskName = "imagenav",
    observation: ObservationMode = "mean",
    scenes: Sequence[Scene] | None = None,
    scene_features: SceneFeatures | None = None,
    scene_generator: SceneGenerator | None = None,
    split: str = "train",
    n_scenes: int | None = 4,
    scene_ids: Sequence[int] | None = None,
    image_size: int = 448,
    scene_seed: int = 0,
    scene_folder: str | os.PathLike | None = None,
    encoder: nn.Module | str | None = None,
    encoder_weights: str | os.PathLike | None = None,
    device: str | None = None,
    storage_dtype: StorageDType = "float32",
    encode_batch_size: int = 16,
    cache_block: int | None = None,
    patch_size: int | None = None,
    colour_variants: int = 1,
    tv: TVMode = "none",
    tv_frames: int = DEFAULT_TV_FRAMES,
    tv_cells: int = DEFAULT_TV_CELLS,
    goal_variants: int = 1,
    goal_image_size: int | None = None,
    goal_pooling: GoalPooling = "object",
) -> NavWorld:
    """Scenes + variant images + features + object goals (see :class:`~envs.image_nav_env.ImageNavEnv` Arguments).

    Feature observations encode everything once with ``encoder``; pixel observations need no encoder (then
    ``patch_size`` sets the cell size, default 14), nor do oracle observations (ground-truth cell features from the
    scene generator, :mod:`envs.oracle`; the encoder, if given, only sets the patch size). Worlds built from names
    only (``encoder`` ``None`` or a registry name without weights, procedural scenes from arguments) are deterministic
    and memoised in-process (the last 8), so repeated ``gymnasium.make`` calls share one; such a world cannot be
    refreshed (pass an encoder instance to own one). ``tv`` (:mod:`envs.tv`) makes the variants the frames of a TV
    pool of ``tv_frames`` per scene, ``tv_cells`` cells wide; every feature space computes each frame once.
    """
    needs_encoder = observation not in ("pixels", "oracle")
    model: nn.Module | None = None
    if needs_encoder and scene_features is not None and task == "objectnav" and encoder is None:
        raise ValueError(
            "ObjectNav with prebuilt scene_features also needs the encoder that built them (encoder=...), "
            "to encode the goal images"
        )
    if needs_encoder and (scene_features is None or task == "objectnav"):
        model = resolve_encoder(encoder, encoder_weights, device)
        if scene_features is not None and int(model.embed_dim) != scene_features.dim:
            raise ValueError(
                f"encoder width {model.embed_dim} differs from the scene_features width {scene_features.dim}; "
                "pass the encoder that built scene_features"
            )
    if model is not None:
        patch = int(model.patch_size)
    elif scene_features is not None:
        patch = scene_features.patch_size
    else:
        patch = 14 if patch_size is None else int(patch_size)
    if patch_size is not None and int(patch_size) != patch:
        raise ValueError(f"patch_size={patch_size} does not match the encoder's patch size {patch}; omit patch_size")
    if scenes is None:
        scenes = load_scenes(
            split=split,
            n_scenes=n_scenes,
            scene_ids=scene_ids,
            image_size=image_size,
            patch_size=patch,
            scene_seed=scene_seed,
            scene_generator=scene_generator,
            scene_folder=scene_folder,
        )
    scenes = list(scenes)
    if not scenes:
        raise ValueError("no scenes: pass scenes, n_scenes >= 1, scene_ids, or a scene_folder with images")
    images, variant_mode, screens = scene_variant_images(scenes, colour_variants, tv, tv_frames, tv_cells, patch)
    features = scene_features
    if observation == "oracle":
        if scene_features is not None:
            raise ValueError("observation='oracle' serves ground-truth features; drop scene_features")
        features = oracle_features(
            scenes, images.shape[1], patch, (images.shape[2] // patch, images.shape[3] // patch), screens
        )
    elif needs_encoder and features is None:
        features = SceneFeatures.from_encoder(model, images, encode_batch_size, device, storage_dtype, cache_block)
    elif features is not None and features.images is not None and features.images.shape == images.shape:
        images = features.images  # share the caller's array instead of keeping a second copy
    object_goals = None
    if task == "objectnav":
        grid_shape = (images.shape[2] // patch, images.shape[3] // patch)
        avoid = [[o.colour for o in s.objects] + _variant_colours(s, images.shape[1], variant_mode) for s in scenes]
        object_goals = build_object_goals(
            scenes,
            patch,
            grid_shape,
            goal_variants,
            goal_image_size,
            goal_pooling,
            avoid,
            outline=getattr(scene_generator, "outline", True),
        )
        if observation == "oracle":
            object_goals.vectors = oracle_goal_vectors(object_goals.goal_class, object_goals.n_variants)
        elif needs_encoder:
            fs = features
            object_goals.encode(
                model,
                encode_batch_size,
                device,
                fs.storage_dtype if fs is not None else storage_dtype,
                fs.cache_block if fs is not None else cache_block,
            )
    return NavWorld(
        scenes,
        images,
        patch,
        variant_mode=variant_mode,
        tv=screens,
        features=features,
        object_goals=object_goals,
    )


def _variant_colours(scene: Scene, n_variants: int, mode: VariantMode) -> list:
    """Colours the scene's objects take in its colour variants (goal colours avoid them too)."""
    if mode != "episode" or n_variants < 2:
        return []
    from envs.scenes import variant_colours

    return [c for v in range(1, n_variants) for c in variant_colours(scene, v).values()]


__all__ = [
    "DEFAULT_ENCODER",
    "NavWorld",
    "ObservationMode",
    "TaskName",
    "build_world",
    "load_scenes",
    "resolve_encoder",
    "scene_variant_images",
]
