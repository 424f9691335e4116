"""Procedural scenes: a textured background and several non-overlapping objects of random class, colour, size,
position and small rotation, with per-object annotations; reproducible bit-for-bit from ``(split, scene_id)``.

Sampling (this module) turns a seed into a :class:`~envs.scenes.layout.SceneLayout`; drawing
(:mod:`envs.scenes.layout`) turns the layout into pixels. Objects are placed by rejection sampling so that their
pixel regions (rotated extent + antialiasing pad) are at least ``min_gap`` pixels apart and inside the image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from envs.scenes import variants
from envs.scenes.backgrounds import check_background, render_background
from envs.scenes.layout import ObjectLayout, SceneLayout, paste_object, render_layout
from envs.scenes.objects import draw_object_layers, get_object_class
from envs.scenes.painter import region_for, rotated_extent
from envs.scenes.palette import random_colour
from envs.scenes.splits import split_index, split_seed
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, Colour, Scene

__all__ = ["PLAIN_BACKGROUND", "SceneGenerator", "SceneTooSmallError", "smallest_image_size", "split_seed"]

logger = logging.getLogger(__name__)

#: Background colour of :meth:`SceneGenerator.render_object` when ``background=None``.
PLAIN_BACKGROUND: Colour = (150, 150, 150)


class SceneTooSmallError(ValueError):
    """The scene is too small for the objects it must hold (the largest does not fit, or too few could be placed)."""


class SceneGenerator:
    """Draws procedural scenes; ``generate(scene_id, split)`` is a pure function of its arguments and of the
    constructor arguments.

    Arguments:
        image_size: side of the square scene in pixels; must be a multiple of ``patch_size``.
        n_objects: ``(min, max)`` number of objects per scene, both inclusive.
        classes: classes to draw from (names in :data:`~envs.scenes.types.OBJECT_CLASSES`); ``class_id`` of the
            annotations is always the index in ``OBJECT_CLASSES``.
        object_size: ``(min, max)`` object size in pixels (the longer side of the upright object), inclusive.
        backgrounds: background textures to draw from (names in :data:`~envs.scenes.types.BACKGROUNDS`).
        min_gap: minimum distance in pixels between the regions of two objects.
        max_rotation: objects are rotated by a uniform angle in ``[-max_rotation, max_rotation]`` degrees.
        seed: base seed; different seeds give disjoint families of scenes.
        patch_size: the encoder's patch size (only used to validate ``image_size``).
        class_weights: sampling weights of ``classes`` (default uniform).
        outline: draw a soft dark outline under each object (keeps silhouettes visible on any background).
        max_tries: placement attempts per object before giving up on it.
    """

    def __init__(
        self,
        image_size: int = 448,
        n_objects: tuple[int, int] = (4, 8),
        classes: Sequence[str] = OBJECT_CLASSES,
        object_size: tuple[int, int] = (36, 72),
        backgrounds: Sequence[str] = BACKGROUNDS,
        min_gap: int = 4,
        max_rotation: float = 15.0,
        seed: int = 0,
        patch_size: int = 14,
        class_weights: Sequence[float] | None = None,
        outline: bool = True,
        max_tries: int = 200,
    ):
        if patch_size < 1 or image_size < patch_size or image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a positive multiple of patch_size ({patch_size}), e.g. "
                f"{max(1, round(image_size / max(patch_size, 1))) * max(patch_size, 1)}"
            )
        if not 0 <= n_objects[0] <= n_objects[1]:
            raise ValueError(f"n_objects must be (min, max) with 0 <= min <= max, got {n_objects}")
        if not 4 <= object_size[0] <= object_size[1]:
            raise ValueError(f"object_size must be (min, max) with 4 <= min <= max pixels, got {object_size}")
        if not classes:
            raise ValueError("classes is empty; pass names from envs.scenes.OBJECT_CLASSES")
        for name in classes:
            get_object_class(name)
        if not backgrounds:
            raise ValueError("backgrounds is empty; pass names from envs.scenes.BACKGROUNDS")
        for name in backgrounds:
            check_background(name)
        if min_gap < 0:
            raise ValueError(f"min_gap must be >= 0, got {min_gap}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if class_weights is not None:
            weights = np.asarray(class_weights, dtype=np.float64)
            if weights.shape != (len(classes),) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(
                    f"class_weights must be {len(classes)} non-negative numbers (one per class) with a positive sum"
                )
            self._class_p: np.ndarray | None = weights / weights.sum()
        else:
            self._class_p = None
        largest = max(max(rotated_extent(*get_object_class(c).extent, max_rotation)) for c in classes)
        if largest * object_size[1] + 8 > image_size:
            raise SceneTooSmallError(
                f"objects of size {object_size[1]} px do not fit in a {image_size} px scene; "
                "lower object_size or raise image_size"
            )
        self.image_size = int(image_size)
        self.n_objects = (int(n_objects[0]), int(n_objects[1]))
        self.classes = tuple(classes)
        self.object_size = (int(object_size[0]), int(object_size[1]))
        self.backgrounds = tuple(backgrounds)
        self.min_gap = int(min_gap)
        self.max_rotation = float(max_rotation)
        self.seed = int(seed)
        self.patch_size = int(patch_size)
        self.outline = bool(outline)
        self.max_tries = int(max_tries)

    def __repr__(self) -> str:
        return (
            f"SceneGenerator(image_size={self.image_size}, n_objects={self.n_objects}, classes={len(self.classes)}, "
            f"object_size={self.object_size}, backgrounds={self.backgrounds}, min_gap={self.min_gap}, "
            f"max_rotation={self.max_rotation}, seed={self.seed})"
        )

    # ------------------------------------------------------------------------------------------- sampling
    def sample_layout(self, scene_id: int, split: str = "train") -> SceneLayout:
        """The layout of scene ``scene_id`` of ``split`` (no pixels drawn)."""
        split_index(split)
        seed = split_seed(split, scene_id, self.seed)
        rng = np.random.default_rng(seed)
        size = self.image_size
        n = int(rng.integers(self.n_objects[0], self.n_objects[1] + 1))
        background = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        background_seed = int(rng.integers(2**63))
        placed: list[ObjectLayout] = []
        for k in range(n):
            obj = self._place(rng, placed)
            if obj is None:
                if len(placed) < self.n_objects[0]:
                    raise SceneTooSmallError(
                        f"could only place {len(placed)} of at least {self.n_objects[0]} objects in scene "
                        f"{scene_id} ({split}); lower n_objects, object_size or min_gap, or raise image_size"
                    )
                logger.debug("scene %s/%d: placed %d of %d objects", split, scene_id, k, n)
                break
            placed.append(obj)
        return SceneLayout(size, size, background, background_seed, tuple(placed), seed, self.outline)

    def _place(self, rng: np.random.Generator, placed: Sequence[ObjectLayout]) -> ObjectLayout | None:
        """Sample one object whose region keeps ``min_gap`` from every placed region (``None`` if none fits)."""
        if self._class_p is None:
            class_name = self.classes[int(rng.integers(len(self.classes)))]
        else:
            class_name = self.classes[int(rng.choice(len(self.classes), p=self._class_p))]
        extent = get_object_class(class_name).extent
        colour = random_colour(rng)
        style_seed = int(rng.integers(2**63))
        gap = self.min_gap
        for _ in range(self.max_tries):
            obj_size = int(rng.integers(self.object_size[0], self.object_size[1] + 1))
            angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
            w, h = rotated_extent(extent[0] * obj_size, extent[1] * obj_size, angle)
            lo_x, hi_x = w / 2 + 4, self.image_size - 1 - w / 2 - 4
            lo_y, hi_y = h / 2 + 4, self.image_size - 1 - h / 2 - 4
            center = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
            region = region_for(center, obj_size, extent, angle)
            if not any(_too_close(region, o.region, gap) for o in placed):
                return ObjectLayout(class_name, center, obj_size, angle, colour, style_seed, region)
        return None

    # ------------------------------------------------------------------------------------------- scenes
    def generate(self, scene_id: int, split: str = "train") -> Scene:
        """Scene ``scene_id`` of ``split`` (``"train"``, ``"val"`` or ``"test"``): ``(H, W, 3) uint8`` + annotations."""
        return render_layout(self.sample_layout(scene_id, split), split, int(scene_id))

    def generate_many(self, ids: Sequence[int], split: str = "train") -> list[Scene]:
        """:meth:`generate` for every id in ``ids`` (in order)."""
        return [self.generate(i, split) for i in ids]

    def recolour(
        self,
        scene: Scene,
        variant: int,
        object_indices: Sequence[int] | None = None,
        min_distance: float = variants.DEFAULT_MIN_DISTANCE,
    ) -> Scene:
        """The same scene with the chosen objects (default all) in the colours of ``variant``.

        Layout, background and every pixel outside the chosen objects stay the same; variant 0 gives the original
        colours; variant ``v >= 1`` gives colours at least ``min_distance`` (RGB) from the originals,
        deterministic in ``(scene, v, object index)`` (see :mod:`envs.scenes.variants`).
        """
        return variants.recolour(scene, variant, object_indices, min_distance)

    def colour_variants(
        self,
        scene: Scene,
        k: int,
        object_indices: Sequence[int] | None = None,
        min_distance: float = variants.DEFAULT_MIN_DISTANCE,
    ) -> list[Scene]:
        """``[recolour(scene, v, object_indices) for v in range(k)]``, sharing the drawing work; ``[0]`` is the
        original."""
        return variants.colour_variants(scene, k, object_indices, min_distance)

    # ------------------------------------------------------------------------------------------- objects
    def render_object(
        self,
        class_name: str,
        colour: Colour,
        size: int | None = None,
        image_size: int = 112,
        background: str | None = None,
        angle: float = 0.0,
        rng: np.random.Generator | None = None,
        offset: tuple[float, float] = (0.0, 0.0),
    ) -> np.ndarray:
        """One object centred in an ``(image_size, image_size, 3) uint8`` RGB image.

        ``size`` defaults to ``0.7 * image_size``; ``background`` is a name from
        :data:`~envs.scenes.types.BACKGROUNDS` or ``None`` for a plain grey (:data:`PLAIN_BACKGROUND`);
        ``offset`` shifts the object from the centre (pixels); ``rng`` draws the background texture and the
        style details (default ``np.random.default_rng(0)``). Parts that leave the image are clipped.
        """
        return render_object(class_name, colour, size, image_size, background, angle, rng, offset, self.outline)


def _too_close(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """Whether boxes ``a`` and ``b`` (exclusive ends) are closer than ``gap`` pixels along both axes."""
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def render_object(
    class_name: str,
    colour: Colour,
    size: int | None = None,
    image_size: int = 112,
    background: str | None = None,
    angle: float = 0.0,
    rng: np.random.Generator | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    outline: bool = True,
    style_seed: int | None = None,
) -> np.ndarray:
    """Module-level :meth:`SceneGenerator.render_object` (no generator needed); ``style_seed`` paints the instance
    of that seed (see :func:`paint_object`) instead of one drawn from ``rng``."""
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    if size is None:
        size = round(0.7 * image_size)
    if size < 4:
        raise ValueError(f"size must be >= 4 pixels, got {size}")
    if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
        raise ValueError(f"colour must be an (r, g, b) triple of ints in [0, 255], got {colour}")
    get_object_class(class_name)
    rng = np.random.default_rng(0) if rng is None else rng
    canvas = object_canvas(background, image_size, rng)
    drawn_seed = int(rng.integers(2**63))  # drawn even when style_seed is given: the stream stays the same
    style = drawn_seed if style_seed is None else style_seed
    return paint_object(canvas, class_name, colour, size, angle, offset, style, outline)


def object_canvas(background: str | None, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The ``(S, S, 3) uint8`` background of a single-object image: ``background`` drawn with ``rng``, or plain grey
    (:data:`PLAIN_BACKGROUND`) for ``None``."""
    if background is None:
        canvas = np.empty((image_size, image_size, 3), dtype=np.uint8)
        canvas[:] = PLAIN_BACKGROUND
        return canvas
    return render_background(background, image_size, image_size, rng)


def paint_object(
    canvas: np.ndarray,
    class_name: str,
    colour: Colour,
    size: int,
    angle: float,
    offset: tuple[float, float],
    style_seed: int,
    outline: bool = True,
) -> np.ndarray:
    """A copy of ``canvas`` ``(S, S, 3) uint8`` with one object painted at ``offset`` from its centre; ``style_seed``
    fixes the class's style details (a tree's kind, a roof's tone), so one seed paints one object instance."""
    cls = get_object_class(class_name)
    image_size = canvas.shape[0]
    centre = ((image_size - 1) / 2 + offset[0], (image_size - 1) / 2 + offset[1])
    region = region_for(centre, size, cls.extent, angle)
    _, layers = draw_object_layers(class_name, centre, size, angle, int(style_seed), region, outline)
    image = canvas.copy()
    paste_object(image, canvas, region, layers, (int(colour[0]), int(colour[1]), int(colour[2])))
    return image


def smallest_image_size(
    scene_ids: Sequence[int],
    split: str,
    start: int,
    make_generator: Callable[[int], SceneGenerator],
    patch_size: int = 14,
    limit: int = 2048,
) -> int | None:
    """The smallest ``image_size >= start`` (a multiple of ``patch_size``) at which ``make_generator(image_size)``
    lays out every scene of ``scene_ids`` of ``split`` (layouts only, no pixels are drawn); ``None`` up to ``limit``."""
    for size in range(-(-start // patch_size) * patch_size, limit + 1, patch_size):
        try:
            generator = make_generator(size)
            for scene_id in scene_ids:
                generator.sample_layout(int(scene_id), split)
        except SceneTooSmallError:
            continue
        return size
    return None
