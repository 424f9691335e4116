"""Colours: random object colours over the full hue range, colours kept apart from others, fixed detail colours.

Distances are Euclidean in RGB (0..255 per channel; the largest possible distance is about 441.7).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import numpy as np

Colour = tuple[int, int, int]

#: Saturation and value ranges of :func:`random_colour` (HSV, 0..1).
SATURATION_RANGE = (0.25, 1.0)
VALUE_RANGE = (0.35, 1.0)

# Fixed detail colours (RGB). Shared by the object drawers so every class uses the same few detail tones.
TYRE = (28, 28, 32)
HUB = (150, 150, 158)
GLASS = (188, 222, 240)
WINDOW_FRAME = (245, 245, 240)
DOOR = (92, 58, 34)
TRUNK = (110, 72, 40)
STEM = (46, 130, 50)
POLE = (95, 98, 105)
SKIN_TONES = ((241, 194, 158), (224, 172, 125), (176, 118, 80), (120, 78, 50))
HAIR = ((40, 30, 24), (90, 60, 30), (200, 170, 90), (30, 30, 30))
TROUSERS = ((40, 48, 80), (50, 50, 55), (90, 80, 70))
SAIL = (248, 246, 236)
MAST = (70, 52, 36)
LAMP_RED = (235, 40, 35)
LAMP_AMBER = (250, 180, 30)
LAMP_GREEN = (50, 210, 80)
LAMP_OFF = (55, 55, 55)
FLOWER_CENTRE = ((250, 210, 40), (120, 70, 30))
HEADLIGHT = (255, 244, 190)
TAILLIGHT = (200, 30, 30)
ROOF_TONES = ((150, 52, 40), (92, 70, 62), (70, 72, 80), (120, 80, 50))
OUTLINE = (30, 30, 34)


def hsv_to_rgb(h: float, s: float, v: float) -> Colour:
    """HSV in ``[0, 1]`` each (hue wraps) -> RGB ints in ``[0, 255]``."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def random_colour(rng: np.random.Generator, hue_range: tuple[float, float] = (0.0, 1.0)) -> Colour:
    """A random RGB colour: hue uniform in ``hue_range`` (turns; the default is the whole circle), saturation in
    :data:`SATURATION_RANGE`, value in :data:`VALUE_RANGE`. The draws are the same for every ``hue_range``."""
    h = hue_range[0] + (hue_range[1] - hue_range[0]) * rng.random()
    s = SATURATION_RANGE[0] + (SATURATION_RANGE[1] - SATURATION_RANGE[0]) * rng.random()
    v = VALUE_RANGE[0] + (VALUE_RANGE[1] - VALUE_RANGE[0]) * rng.random()
    return hsv_to_rgb(h, s, v)


def colour_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Euclidean RGB distance between two colours."""
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


def distinct_colour(
    rng: np.random.Generator, avoid: Sequence[Sequence[int]], min_distance: float = 100.0, max_tries: int = 200
) -> Colour:
    """A :func:`random_colour` at least ``min_distance`` (RGB) from every colour in ``avoid``.

    Rejection sampling; if no candidate qualifies within ``max_tries`` (``avoid`` crowds the colour space), the
    candidate farthest from its nearest avoided colour is returned. Deterministic for a given ``rng`` state.
    """
    if min_distance < 0:
        raise ValueError(f"min_distance must be >= 0, got {min_distance}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    best, best_d = None, -1.0
    for _ in range(max_tries):
        candidate = random_colour(rng)
        d = min((colour_distance(candidate, a) for a in avoid), default=math.inf)
        if d >= min_distance:
            return candidate
        if d > best_d:
            best, best_d = candidate, d
    assert best is not None  # internal invariant: max_tries >= 1
    return best


def class_colours(n: int, saturation: float = 0.85, value: float = 0.9) -> list[Colour]:
    """``n`` colours with evenly spaced hues (the fixed per-class colours of the "colour shortcut" control)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [hsv_to_rgb(i / n, saturation, value) for i in range(n)]
