"""Scene data types: object classes, backgrounds, per-object annotations and the scene record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Object classes in class-id order (``class_id`` is the index here; new classes are only ever appended).
OBJECT_CLASSES: tuple[str, ...] = (
    "car",
    "house",
    "tree",
    "person",
    "boat",
    "traffic_light",
    "flower",
    "bicycle",
    "bus",
    "umbrella",
    "chair",
    "airplane",
)

#: Procedural background textures.
BACKGROUNDS: tuple[str, ...] = ("grass", "road", "water", "sand", "snow", "pavement")

#: Scene splits of the procedural generator (``"folder"`` marks scenes loaded from photos).
SPLITS: tuple[str, ...] = ("train", "val", "test")

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class SceneObject:
    """Annotation of one object drawn in a scene.

    ``bbox`` is ``(x0, y0, x1, y1)`` in pixels with exclusive ends: the tight box of every pixel the object
    touches (antialiased edges included), clipped to the image. ``center`` is the centre of the object's
    upright box (rotation centre), ``colour`` the main body colour, ``angle`` the rotation in degrees
    (counter-clockwise on screen) and ``size`` the longer side of the upright object in pixels.
    """

    class_name: str
    class_id: int
    bbox: tuple[int, int, int, int]
    center: tuple[float, float]
    colour: Colour
    angle: float
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists instead of tuples)."""
        return {
            "class_name": self.class_name,
            "class_id": self.class_id,
            "bbox": list(self.bbox),
            "center": [round(self.center[0], 3), round(self.center[1], 3)],
            "colour": list(self.colour),
            "angle": round(self.angle, 3),
            "size": self.size,
        }


@dataclass
class Scene:
    """A scene image and its annotations.

    ``image`` is ``(H, W, 3) uint8`` RGB with ``H`` and ``W`` multiples of the patch size. ``layout`` holds what
    is needed to redraw the scene with other object colours (:class:`envs.scenes.generator.SceneLayout` for
    procedural scenes, ``None`` for photos); treat it as opaque. ``source`` is the file of a photo scene.
    """

    image: np.ndarray
    objects: list[SceneObject]
    background: str
    split: str
    scene_id: int
    layout: Any = None
    source: str | None = field(default=None)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def annotation(self) -> dict[str, Any]:
        """JSON-friendly description of the scene (everything except the pixels and the layout)."""
        return {
            "scene_id": self.scene_id,
            "split": self.split,
            "background": self.background,
            "height": self.height,
            "width": self.width,
            "objects": [o.to_dict() for o in self.objects],
            **({"source": self.source} if self.source is not None else {}),
        }
