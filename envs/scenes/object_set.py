"""A labelled single-object image set for encoder evaluation (k-NN, linear probe, colour-invariance studies).

Each image shows one object of a class, in a random colour (or a fixed colour per class: the "colour shortcut"
control), random size, position jitter, rotation and background. Sample ``(class, index)`` of a split is a pure
function of ``(seed, split, class, index)``, and the three splits use disjoint random streams. Geometry,
colour and background are drawn from independent streams, so :func:`sample_object` with ``colour=...`` shows
the *same* object (same pose, size and background) in another colour.

    python -m envs.scenes.object_set --out data/objects/train --per-class 50 --split train
    python -m envs.scenes.object_set --out data/objects/val --per-class 20 --split val
    python -m envs.scenes.object_set --out data/objects_fixed/train --per-class 50 --colour-mode fixed

Layout on disk: ``OUT/<class>/<class>_<index:05d>.png`` (one sub-folder per class, the format of
``encoders.data.image_folder.LabelledImageFolder``), ``OUT/labels.jsonl`` (one JSON line per image: file, class,
colour, size, angle, offset, background) and ``OUT/config.json`` (the resolved options).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from envs.scenes.backgrounds import check_background
from envs.scenes.generator import object_canvas, paint_object
from envs.scenes.objects import get_object_class
from envs.scenes.painter import rotated_extent
from envs.scenes.palette import class_colours, random_colour
from envs.scenes.splits import split_index
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, Colour

logger = logging.getLogger(__name__)

_STREAM = 0x0B1EC7  # separates object-set streams from the scene streams
PLAIN = "plain"  # background name for the plain grey canvas

ColourMode = Literal["random", "fixed"]
ViewGeometry = Literal["same", "redrawn"]


@dataclass(frozen=True)
class ObjectSample:
    """One labelled object image ``(S, S, 3) uint8`` and how it was drawn."""

    image: np.ndarray
    class_name: str
    class_id: int
    colour: Colour
    size: int
    angle: float
    offset: tuple[float, float]
    background: str
    split: str
    index: int
    style_seed: int
    """the seed of the instance's style details (pass it to another view to paint the same instance)"""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly metadata (everything except the pixels)."""
        return {
            "class_name": self.class_name,
            "class_id": self.class_id,
            "colour": list(self.colour),
            "size": self.size,
            "angle": round(self.angle, 3),
            "offset": [round(self.offset[0], 3), round(self.offset[1], 3)],
            "background": self.background,
            "split": self.split,
            "index": self.index,
        }


def fixed_class_colour(class_name: str) -> Colour:
    """The colour of ``class_name`` in ``colour_mode="fixed"`` (evenly spaced hues over all classes)."""
    get_object_class(class_name)
    return class_colours(len(OBJECT_CLASSES))[OBJECT_CLASSES.index(class_name)]


def sample_object(
    class_name: str,
    index: int,
    split: str = "train",
    *,
    seed: int = 0,
    image_size: int = 112,
    size_range: tuple[float, float] = (0.45, 0.8),
    max_rotation: float = 15.0,
    max_offset: float = 0.1,
    backgrounds: Sequence[str] = (*BACKGROUNDS, PLAIN),
    colour_mode: ColourMode = "random",
    colour: Colour | None = None,
    hue_range: tuple[float, float] = (0.0, 1.0),
    view: int = 0,
    view_geometry: ViewGeometry = "same",
    style_seed: int | None = None,
) -> ObjectSample:
    """Object ``index`` of ``class_name`` in ``split``.

    Arguments:
        size_range: object size as a fraction of ``image_size`` (uniform).
        max_rotation: rotation uniform in ``[-max_rotation, max_rotation]`` degrees.
        max_offset: centre jitter, uniform in ``[-max_offset, max_offset] * image_size`` per axis.
        backgrounds: names from :data:`~envs.scenes.types.BACKGROUNDS` and/or ``"plain"`` (uniform grey).
        colour_mode: ``"random"`` (:func:`~envs.scenes.palette.random_colour`) or ``"fixed"``
            (:func:`fixed_class_colour`).
        colour: overrides the colour; everything else stays the same as without it.
        hue_range: hues (turns) of ``colour_mode="random"``; disjoint ranges for train and validation make the
            colour-shift protocol, where a colour shortcut fails. Only the colour depends on it.
        view: 0 draws the sample as always; ``view > 0`` keeps its class but draws its background and random
            colour from streams of their own, so views 0 and 1 are two renders of one object that differ in the
            nuisances (for self-supervised pretraining).
        view_geometry: for ``view > 0``: ``"same"`` keeps view 0's size, pose and position; ``"redrawn"`` draws
            them anew from the view's own stream (within the same ranges), so the views share the object only.
        style_seed: paint the instance of this seed (:func:`envs.scenes.generator.paint_object`), e.g. view 0's
            ``style_seed``, so that views share the style details too (a tree's kind, a roof's tone); ``None``
            draws it from the background's stream, as view 0 does.
    """
    cls = get_object_class(class_name)
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    if not 0 < size_range[0] <= size_range[1] <= 1.0:
        raise ValueError(f"size_range must satisfy 0 < min <= max <= 1 (fractions of image_size), got {size_range}")
    if not backgrounds:
        raise ValueError(f"backgrounds is empty; use names from {', '.join((*BACKGROUNDS, PLAIN))}")
    for name in backgrounds:
        if name != PLAIN:
            check_background(name)
    if colour_mode not in ("random", "fixed"):
        raise ValueError(f"colour_mode must be 'random' or 'fixed', got {colour_mode!r}")
    if len(hue_range) != 2 or not 0.0 <= hue_range[0] < hue_range[1] <= 1.0:
        raise ValueError(f"hue_range must be (low, high) turns with 0 <= low < high <= 1, got {tuple(hue_range)}")
    class_id = OBJECT_CLASSES.index(cls.name)
    if view < 0:
        raise ValueError(f"view must be >= 0, got {view}")
    root = np.random.SeedSequence([_STREAM, int(seed), split_index(split), class_id, int(index)])
    geo_seq, colour_seq, bg_seq = root.spawn(3)
    if view_geometry not in ("same", "redrawn"):
        raise ValueError(f"view_geometry must be 'same' or 'redrawn', got {view_geometry!r}")
    if view > 0:  # colour, background choice and texture (and, redrawn, the geometry) from the view's own streams
        colour_seq, bg_seq, choice_seq, view_geo_seq = np.random.SeedSequence(
            [_STREAM, int(seed), split_index(split), class_id, int(index), int(view)]
        ).spawn(4)
        if view_geometry == "redrawn":
            geo_seq = view_geo_seq
    geo = np.random.default_rng(geo_seq)
    size = max(4, round(image_size * geo.uniform(size_range[0], size_range[1])))
    angle = float(geo.uniform(-max_rotation, max_rotation))
    # Jitter the centre, but keep the whole (rotated) object inside the image.
    width, height = rotated_extent(cls.extent[0] * size, cls.extent[1] * size, angle)
    offset = tuple(
        float(np.clip(geo.uniform(-max_offset, max_offset) * image_size, -limit, limit))
        for limit in (max(0.0, (image_size - width) / 2 - 3), max(0.0, (image_size - height) / 2 - 3))
    )
    background = backgrounds[int(geo.integers(len(backgrounds)))]
    if view > 0:
        background = backgrounds[int(np.random.default_rng(choice_seq).integers(len(backgrounds)))]
    if colour is None:
        if colour_mode == "random":
            colour = random_colour(np.random.default_rng(colour_seq), (float(hue_range[0]), float(hue_range[1])))
        else:
            colour = fixed_class_colour(class_name)
    colour = (int(colour[0]), int(colour[1]), int(colour[2]))
    bg_rng = np.random.default_rng(bg_seq)
    canvas = object_canvas(None if background == PLAIN else background, image_size, bg_rng)
    drawn_style = int(bg_rng.integers(2**63))  # as render_object draws it
    style = drawn_style if style_seed is None else int(style_seed)
    image = paint_object(canvas, class_name, colour, size, angle, offset, style)
    return ObjectSample(image, class_name, class_id, colour, size, angle, offset, background, split, int(index), style)


def make_object_set(
    per_class: int, split: str = "train", classes: Sequence[str] = OBJECT_CLASSES, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, list[ObjectSample]]:
    """In-memory object set: ``images (N, S, S, 3) uint8``, ``labels (N,) int64`` (index into ``classes``), samples.

    ``N = per_class * len(classes)``, ordered class by class; ``kwargs`` go to :func:`sample_object`.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    samples = [sample_object(c, i, split, **kwargs) for c in classes for i in range(per_class)]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), per_class)
    return np.stack([s.image for s in samples]), labels, samples


class ObjectViewPairs:
    """A pretraining source of procedural objects: item ``i`` is ``((view 0, view 1), class_id)``, two renders of one
    object instance (same class and style details) with independently drawn backgrounds and colours, and with
    ``view_geometry="redrawn"`` (the default) an independent size, pose and position too: the two views share the
    object and nothing else.

    With :class:`encoders.data.augmentations.DataAugmentationDINO` the two global crops then come from different
    views, so agreeing on background, colour or position stops being a way to match them. ``view_geometry="same"``
    keeps view 0's geometry in view 1 (the earlier pairs). ``paired=False`` returns view 0 alone
    (``(image, class_id)``), the images a folder written by :func:`write_object_set` would hold.

    Args:
        per_class: objects per class (``len = per_class * len(classes)``, ordered class by class).
        paired: render the second view.
        view_geometry: ``"redrawn"`` or ``"same"`` (see :func:`sample_object`).
        second_backgrounds: the backgrounds view 1 draws from (``("plain",)``: the object alone on grey, so
            that the only thing the views share is also the only thing view 1 shows); ``None``: view 0's.
        classes, split, kwargs: as :func:`sample_object` (``seed``, ``image_size``, ``backgrounds``, ...).
    """

    def __init__(
        self,
        per_class: int,
        split: str = "train",
        classes: Sequence[str] = OBJECT_CLASSES,
        paired: bool = True,
        view_geometry: ViewGeometry = "redrawn",
        second_backgrounds: Sequence[str] | None = None,
        **kwargs: Any,
    ):
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        if view_geometry not in ("same", "redrawn"):
            raise ValueError(f"view_geometry must be 'same' or 'redrawn', got {view_geometry!r}")
        for c in classes:
            get_object_class(c)
        split_index(split)
        self.per_class = int(per_class)
        self.split = split
        self.classes = tuple(classes)
        self.paired = paired
        self.view_geometry = view_geometry
        self.kwargs = kwargs
        self.second_kwargs = (
            dict(kwargs) if second_backgrounds is None else {**kwargs, "backgrounds": tuple(second_backgrounds)}
        )

    def __len__(self) -> int:
        return self.per_class * len(self.classes)

    def views(self, i: int) -> tuple[ObjectSample, ObjectSample]:
        """The two samples (images and how they were drawn) of item ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} objects")
        c, index = divmod(int(i), self.per_class)
        name = self.classes[c]
        first = sample_object(name, index, self.split, **self.kwargs)
        second = sample_object(
            name, index, self.split, view=1, view_geometry=self.view_geometry, style_seed=first.style_seed,
            **self.second_kwargs,
        )  # fmt: skip
        return first, second

    def __getitem__(self, i: int) -> tuple[np.ndarray | tuple[np.ndarray, np.ndarray], int]:
        if not self.paired:
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} objects")
            c, index = divmod(int(i), self.per_class)
            return sample_object(self.classes[c], index, self.split, **self.kwargs).image, c
        first, second = self.views(i)
        return (first.image, second.image), int(i) // self.per_class


def write_object_set(
    out: str | Path,
    per_class: int,
    split: str = "train",
    classes: Sequence[str] = OBJECT_CLASSES,
    progress: bool = True,
    **kwargs: Any,
) -> Path:
    """Write the object set to ``out`` (layout in the module docstring) and return ``out``."""
    from encoders.utils.io import atomic_write_text
    from encoders.utils.progress import Progress

    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    for c in classes:
        get_object_class(c)
    split_index(split)
    out = Path(out)
    lines = []
    with Progress(per_class * len(classes), desc=f"object set ({split})", unit="img", disable=not progress) as bar:
        for c in classes:
            folder = out / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                sample = sample_object(c, i, split, **kwargs)
                name = f"{c}/{c}_{i:05d}.png"
                if not cv2.imwrite(str(out / name), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {out / name}; check that the folder is writable")
                lines.append(json.dumps({"file": name, **sample.to_dict()}))
                bar.update()
    atomic_write_text("\n".join(lines) + "\n", out / "labels.jsonl")
    return out


def read_object_labels(folder: str | Path) -> dict[str, dict[str, Any]] | None:
    """``folder/labels.jsonl`` of :func:`write_object_set` as ``{relative file: metadata}``; ``None`` without one."""
    path = Path(folder) / "labels.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row.pop("file"): row for row in rows}


# ------------------------------------------------------------------------------------------------------ CLI
@dataclass
class ObjectSetConfig:
    """Write a labelled object set: one sub-folder per class, one object per image."""

    out: Path | None = None
    """output folder (required)"""
    per_class: int = 50
    """images per class"""
    split: Literal["train", "val", "test"] = "train"
    """which split's random stream to draw from (splits never share samples)"""
    image_size: int = 112
    """image side in pixels"""
    seed: int = 0
    """base seed"""
    classes: tuple[str, ...] = OBJECT_CLASSES
    """object classes"""
    backgrounds: tuple[str, ...] = (*BACKGROUNDS, PLAIN)
    """backgrounds drawn from ('plain' = uniform grey)"""
    colour_mode: Literal["random", "fixed"] = "random"
    """'random': random colour per image; 'fixed': one colour per class (the colour-shortcut control)"""
    hue_range: tuple[float, float] = (0.0, 1.0)
    """hue range (turns) of the random colours, e.g. 0 0.5 for a colour-shift training split"""
    size_range: tuple[float, float] = (0.45, 0.8)
    """object size as a fraction of the image side"""
    max_rotation: float = 15.0
    """maximum rotation in degrees"""
    max_offset: float = 0.1
    """maximum centre jitter as a fraction of the image side"""


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.config import config_to_dict, parse_config, save_config
    from encoders.utils.logging import setup_logging

    cfg = parse_config(ObjectSetConfig, argv, description=__doc__.split("\n\n")[0])
    setup_logging()
    if cfg.out is None:
        print("error: pass --out DIR (the folder to write the object set to)", file=sys.stderr)
        return 2
    kwargs = config_to_dict(cfg)
    for key in ("out", "per_class", "split", "classes"):
        kwargs.pop(key)
    kwargs["size_range"] = tuple(kwargs["size_range"])
    kwargs["backgrounds"] = tuple(kwargs["backgrounds"])
    kwargs["hue_range"] = tuple(kwargs["hue_range"])
    try:
        out = write_object_set(cfg.out, cfg.per_class, cfg.split, cfg.classes, **kwargs)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_config(cfg, out)
    print(f"wrote {cfg.per_class * len(cfg.classes)} images ({len(cfg.classes)} classes, split {cfg.split}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
