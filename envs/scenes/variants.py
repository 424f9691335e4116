"""Colour variants of a scene (same layout, objects re-drawn in new colours).

Variant ``v`` of a scene gives each chosen object a colour that depends only on ``(scene seed, v, object index)``:
``v == 0`` is the original colour, ``v >= 1`` a random colour at least ``min_distance`` (RGB) from the original.
So variant ``v`` of an object is the same whichever other objects are recoloured and however many variants are
requested, and an object can be shown in ``variants[rng.integers(K)]`` per episode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.scenes.layout import SceneLayout, redraw
from envs.scenes.palette import distinct_colour
from envs.scenes.types import Colour, Scene

#: Default minimum RGB distance between a recoloured object and its original colour.
DEFAULT_MIN_DISTANCE = 100.0

_VARIANT_STREAM = 0xC0105  # separates variant colours from every other use of the scene seed


def _layout(scene: Scene) -> SceneLayout:
    if not isinstance(scene.layout, SceneLayout):
        raise ValueError(
            "this scene has no procedural layout (photo scenes cannot be recoloured); "
            "use a scene from SceneGenerator.generate"
        )
    return scene.layout


def _indices(layout: SceneLayout, object_indices: Sequence[int] | None) -> list[int]:
    if object_indices is None:
        return list(range(len(layout.objects)))
    out = []
    for i in object_indices:
        if not 0 <= int(i) < len(layout.objects):
            raise ValueError(f"object index {i} out of range: the scene has {len(layout.objects)} objects")
        out.append(int(i))
    return out


def variant_colour(layout: SceneLayout, variant: int, index: int, min_distance: float = DEFAULT_MIN_DISTANCE) -> Colour:
    """Colour of object ``index`` in variant ``variant`` (the original colour for ``variant == 0``)."""
    if int(variant) < 0:
        raise ValueError(f"variant must be >= 0, got {variant}")
    original = layout.objects[index].colour
    if variant == 0:
        return original
    rng = np.random.default_rng([_VARIANT_STREAM, layout.seed, int(variant), int(index)])
    return distinct_colour(rng, [original], min_distance)


def variant_colours(
    scene: Scene, variant: int, object_indices: Sequence[int] | None = None, min_distance: float = DEFAULT_MIN_DISTANCE
) -> dict[int, Colour]:
    """``{object index: colour}`` of variant ``variant`` for the chosen objects (default: all)."""
    layout = _layout(scene)
    return {i: variant_colour(layout, variant, i, min_distance) for i in _indices(layout, object_indices)}


def recolour(
    scene: Scene,
    variant: int,
    object_indices: Sequence[int] | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> Scene:
    """``scene`` with the chosen objects (default all) in the colours of ``variant``; others keep their pixels."""
    return redraw(scene, [variant_colours(scene, variant, object_indices, min_distance)])[0]


def colour_variants(
    scene: Scene,
    k: int,
    object_indices: Sequence[int] | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> list[Scene]:
    """Variants ``0 .. k-1`` of ``scene`` (``[0]`` has the original colours of the chosen objects).

    The background and the chosen objects' masks are drawn once; each variant costs one composite per object.
    """
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return redraw(scene, [variant_colours(scene, v, object_indices, min_distance) for v in range(int(k))])


def variant_images(
    scene: Scene,
    k: int,
    object_indices: Sequence[int] | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> np.ndarray:
    """The images of :func:`colour_variants` stacked as ``(k, H, W, 3) uint8`` (e.g. to encode in one batch)."""
    return np.stack([s.image for s in colour_variants(scene, k, object_indices, min_distance)])


def changed_mask(scene: Scene, object_indices: Sequence[int]) -> np.ndarray:
    """``(H, W) bool``: the pixels that colour variants of ``object_indices`` may change (their regions)."""
    layout = _layout(scene)
    mask = np.zeros((scene.height, scene.width), dtype=bool)
    for i in _indices(layout, object_indices):
        x0, y0, x1, y1 = layout.objects[i].region
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask
