"""Scene layouts (what to draw where) and their rendering: the layout -> pixels half of the generator.

A :class:`SceneLayout` is small and picklable: background name and seed, and per object its class, centre,
size, angle, original colour, style seed and pixel region. Rendering draws the background from its seed and
composites every object over it inside its region (see :mod:`envs.scenes.painter`). Regions of different
objects never overlap, so an object can be redrawn in another colour by recompositing its region alone over the
regenerated background; the result is bit-identical to rendering the whole layout with that colour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from envs.scenes.backgrounds import render_background
from envs.scenes.objects import draw_object_layers
from envs.scenes.painter import Layer, composite
from envs.scenes.types import OBJECT_CLASSES, Colour, Scene, SceneObject


@dataclass(frozen=True)
class ObjectLayout:
    """Everything needed to draw one object: pose, original colour, style seed and its pixel ``region``."""

    class_name: str
    center: tuple[float, float]
    size: int
    angle: float
    colour: Colour
    style_seed: int
    region: tuple[int, int, int, int]


@dataclass(frozen=True)
class SceneLayout:
    """Everything needed to redraw a procedural scene: size, background and seed, objects, and flags.

    ``seed`` is the scene's :func:`envs.scenes.splits.split_seed`; colour variants derive their colours from it.
    """

    height: int
    width: int
    background: str
    background_seed: int
    objects: tuple[ObjectLayout, ...]
    seed: int
    outline: bool = True


def _clip(region: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = region
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def paste_object(
    image: np.ndarray,
    background: np.ndarray,
    region: tuple[int, int, int, int],
    layers: Sequence[Layer],
    colour: Colour,
) -> tuple[int, int, int, int] | None:
    """Composite ``layers`` in ``colour`` over ``background`` into ``image`` (both ``(H, W, 3) uint8``) in place.

    ``region`` may extend past the image (it is clipped). Returns the tight box ``(x0, y0, x1, y1)`` of the
    pixels the object touches, or ``None`` if it touches none inside the image.
    """
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _clip(region, height, width)
    if x0 >= x1 or y0 >= y1:
        return None
    ox, oy = x0 - region[0], y0 - region[1]
    crop = [Layer(layer.spec, layer.mask[oy : oy + y1 - y0, ox : ox + x1 - x0]) for layer in layers]
    image[y0:y1, x0:x1] = composite(background[y0:y1, x0:x1], crop, colour)
    touched = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for layer in crop:
        touched |= layer.mask > 0
    rows, cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    if rows.size == 0:
        return None
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _object_layers(obj: ObjectLayout, outline: bool) -> list[Layer]:
    _, layers = draw_object_layers(obj.class_name, obj.center, obj.size, obj.angle, obj.style_seed, obj.region, outline)
    return layers


def _annotation(obj: ObjectLayout, bbox: tuple[int, int, int, int], colour: Colour) -> SceneObject:
    return SceneObject(
        class_name=obj.class_name,
        class_id=OBJECT_CLASSES.index(obj.class_name),
        bbox=bbox,
        center=obj.center,
        colour=colour,
        angle=obj.angle,
        size=obj.size,
    )


def background_of(layout: SceneLayout) -> np.ndarray:
    """The scene's background without objects ``(H, W, 3) uint8``."""
    rng = np.random.default_rng(layout.background_seed)
    return render_background(layout.background, layout.height, layout.width, rng)


def render_layout(layout: SceneLayout, split: str, scene_id: int) -> Scene:
    """Draw a layout with its original colours -> :class:`Scene`."""
    background = background_of(layout)
    image = background.copy()
    objects = []
    for obj in layout.objects:
        bbox = paste_object(image, background, obj.region, _object_layers(obj, layout.outline), obj.colour)
        if bbox is None:  # pragma: no cover - layouts keep regions inside the image
            raise RuntimeError(f"object {obj.class_name} at {obj.center} lies outside the image")
        objects.append(_annotation(obj, bbox, obj.colour))
    return Scene(image, objects, background=layout.background, split=split, scene_id=scene_id, layout=layout)


def redraw(scene: Scene, colour_sets: Sequence[Mapping[int, Colour]]) -> list[Scene]:
    """One copy of ``scene`` per mapping ``{object index: new colour}``, with only those objects redrawn.

    Pixels outside the regions of the redrawn objects are copied from ``scene.image`` unchanged. The background
    and the layers of each redrawn object are computed once and shared by all copies.
    """
    layout = scene.layout
    if not isinstance(layout, SceneLayout):
        raise ValueError(
            "this scene has no procedural layout (photo scenes cannot be recoloured); "
            "use a scene from SceneGenerator.generate"
        )
    indices = sorted({i for colours in colour_sets for i in colours})
    for i in indices:
        if not 0 <= i < len(layout.objects):
            raise ValueError(f"object index {i} out of range: the scene has {len(layout.objects)} objects")
    background = background_of(layout) if indices else None
    layers = {i: _object_layers(layout.objects[i], layout.outline) for i in indices}
    out = []
    for colours in colour_sets:
        image = scene.image.copy()
        objects = list(scene.objects)
        for i, colour in colours.items():
            obj = layout.objects[i]
            colour = (int(colour[0]), int(colour[1]), int(colour[2]))
            paste_object(image, background, obj.region, layers[i], colour)
            objects[i] = dataclasses.replace(objects[i], colour=colour)
        out.append(dataclasses.replace(scene, image=image, objects=objects))
    return out
