"""Scenes for image navigation: procedural scenes with annotations, colour variants, single objects, photo folders.

Main entry points: :class:`SceneGenerator` (``generate``, ``recolour``, ``colour_variants``, ``render_object``),
:func:`split_seed`, :class:`FolderSceneSource`, and the CLIs ``python -m envs.scenes.export`` (scene PNGs +
annotations) and ``python -m envs.scenes.object_set`` (labelled single-object images, one folder per class).
"""

from envs.scenes.folder import FolderSceneSource
from envs.scenes.generator import (
    PLAIN_BACKGROUND,
    SceneGenerator,
    SceneTooSmallError,
    render_object,
    smallest_image_size,
)
from envs.scenes.layout import ObjectLayout, SceneLayout
from envs.scenes.palette import colour_distance, distinct_colour, random_colour
from envs.scenes.splits import split_seed
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, SPLITS, Scene, SceneObject
from envs.scenes.variants import colour_variants, recolour, variant_colours, variant_images

__all__ = [
    "BACKGROUNDS",
    "OBJECT_CLASSES",
    "PLAIN_BACKGROUND",
    "SPLITS",
    "FolderSceneSource",
    "ObjectLayout",
    "Scene",
    "SceneGenerator",
    "SceneLayout",
    "SceneObject",
    "SceneTooSmallError",
    "colour_distance",
    "colour_variants",
    "distinct_colour",
    "random_colour",
    "recolour",
    "render_object",
    "smallest_image_size",
    "split_seed",
    "variant_colours",
    "variant_images",
]
