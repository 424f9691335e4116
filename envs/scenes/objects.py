"""One drawing function per object class, in object coordinates (see :mod:`envs.scenes.painter`).

Every class has a silhouette that identifies it without colour (car: body + cabin + two wheels; house: walls +
roof + door + windows; ...). Parts in the main colour use ``main(shade)``; details use fixed colours from
:mod:`envs.scenes.palette`. Each drawer stays inside its declared upright extent ``(w, h)`` (``max(w, h) == 1``),
which the scene layout uses for placement and :func:`envs.scenes.generator.SceneGenerator.render_object` for
centring. ``rng`` only picks style details (roof tone, crown shape, lit lamp, ...), never the main colour.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from envs.scenes import palette as pal
from envs.scenes.painter import Layer, Painter, ellipse_points, fixed, main, region_for
from envs.scenes.types import OBJECT_CLASSES

Drawer = Callable[[Painter, np.random.Generator], None]


@dataclass(frozen=True)
class ObjectClass:
    """A drawable class: its name, upright extent ``(w, h)`` in object units, and its drawing function."""

    name: str
    extent: tuple[float, float]
    draw: Drawer


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 6) -> np.ndarray:
    """Polygon ``(N, 2)`` of a rectangle with rounded corners of radius ``r``."""
    pts = []
    for cx, cy, a0 in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        for k in range(n + 1):
            a = math.radians(a0 + 90 * k / n)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.asarray(pts)


def _wheel(p: Painter, x: float, y: float, r: float) -> None:
    p.circle(x, y, r, fixed(pal.TYRE))
    p.circle(x, y, r * 0.5, fixed(pal.HUB))
    p.circle(x, y, r * 0.18, fixed(pal.TYRE))


# --------------------------------------------------------------------------------------------------- classes
def draw_car(p: Painter, rng: np.random.Generator) -> None:
    """Side view: body, cabin with two windows, two wheels, head- and tail-light. Extent (1.0, 0.6)."""
    back = -0.36 if rng.integers(2) else -0.24  # hatchback or sedan roof line
    p.polygon([(back, -0.3), (0.1, -0.3), (0.28, -0.08), (back - 0.12, -0.08)], main(0.92))
    p.polygon(_rounded_rect(-0.5, -0.1, 0.5, 0.2, 0.06), main(1.0))
    p.rect(-0.5, 0.12, 0.5, 0.2, main(0.72))
    p.polygon([(back + 0.04, -0.26), (-0.08, -0.26), (-0.08, -0.1), (back - 0.07, -0.1)], fixed(pal.GLASS))
    p.polygon([(-0.04, -0.26), (0.08, -0.26), (0.22, -0.1), (-0.04, -0.1)], fixed(pal.GLASS))
    p.rect(0.44, -0.06, 0.5, 0.01, fixed(pal.HEADLIGHT))
    p.rect(-0.5, -0.06, -0.46, 0.01, fixed(pal.TAILLIGHT))
    for x in (-0.3, 0.3):
        _wheel(p, x, 0.17, 0.13)


def draw_house(p: Painter, rng: np.random.Generator) -> None:
    """Front view: walls, pitched roof with chimney, door, two windows. Extent (0.9, 1.0)."""
    roof = fixed(_pick(rng, pal.ROOF_TONES))
    p.rect(0.16, -0.42, 0.27, -0.2, fixed((120, 60, 45)))
    p.rect(-0.38, -0.12, 0.38, 0.5, main(1.0))
    p.rect(-0.38, 0.44, 0.38, 0.5, main(0.7))
    p.polygon([(0.0, -0.5), (0.45, -0.1), (-0.45, -0.1)], roof)
    p.rect(-0.09, 0.18, 0.09, 0.5, fixed(pal.DOOR))
    p.circle(0.05, 0.35, 0.015, fixed(pal.HUB))
    for x0 in (-0.31, 0.15):
        p.rect(x0, 0.0, x0 + 0.16, 0.16, fixed(pal.WINDOW_FRAME))
        p.rect(x0 + 0.02, 0.02, x0 + 0.07, 0.07, fixed(pal.GLASS))
        p.rect(x0 + 0.09, 0.02, x0 + 0.14, 0.07, fixed(pal.GLASS))
        p.rect(x0 + 0.02, 0.09, x0 + 0.07, 0.14, fixed(pal.GLASS))
        p.rect(x0 + 0.09, 0.09, x0 + 0.14, 0.14, fixed(pal.GLASS))


def draw_tree(p: Painter, rng: np.random.Generator) -> None:
    """Trunk and a crown, either round (cluster of blobs) or conifer (stacked triangles). Extent (0.7, 1.0)."""
    trunk = fixed(pal.TRUNK)
    if rng.integers(2):
        p.polygon([(-0.05, 0.0), (0.05, 0.0), (0.07, 0.5), (-0.07, 0.5)], trunk)
        for cx, cy, r in ((-0.19, 0.0, 0.16), (0.19, 0.0, 0.16), (0.0, 0.04, 0.17)):
            p.circle(cx, cy, r, main(0.8))
        for cx, cy, r in ((-0.2, -0.2, 0.15), (0.2, -0.2, 0.15), (0.0, -0.3, 0.2), (0.0, -0.12, 0.2)):
            p.circle(cx, cy, r, main(1.0))
        p.circle(-0.09, -0.34, 0.08, main(1.15))
    else:
        p.polygon([(-0.05, 0.1), (0.05, 0.1), (0.06, 0.5), (-0.06, 0.5)], trunk)
        p.polygon([(0.0, -0.05), (0.35, 0.28), (-0.35, 0.28)], main(0.85))
        p.polygon([(0.0, -0.3), (0.29, 0.06), (-0.29, 0.06)], main(1.0))
        p.polygon([(0.0, -0.5), (0.22, -0.16), (-0.22, -0.16)], main(1.1))


def draw_person(p: Painter, rng: np.random.Generator) -> None:
    """Standing figure: head with hair, torso in the main colour, arms, legs, shoes. Extent (0.45, 1.0)."""
    skin = fixed(_pick(rng, pal.SKIN_TONES))
    hair = fixed(_pick(rng, pal.HAIR))
    trousers = fixed(_pick(rng, pal.TROUSERS))
    shoe = fixed(pal.TYRE)
    p.line(-0.055, 0.06, -0.085, 0.45, 0.085, trousers)
    p.line(0.055, 0.06, 0.085, 0.45, 0.085, trousers)
    p.ellipse(-0.105, 0.465, 0.055, 0.032, shoe)
    p.ellipse(0.105, 0.465, 0.055, 0.032, shoe)
    p.line(-0.13, -0.23, -0.185, 0.03, 0.06, main(0.8))
    p.line(0.13, -0.23, 0.185, 0.03, 0.06, main(0.8))
    p.circle(-0.188, 0.05, 0.034, skin)
    p.circle(0.188, 0.05, 0.034, skin)
    p.rect(-0.03, -0.3, 0.03, -0.25, skin)
    p.polygon([(-0.13, -0.27), (0.13, -0.27), (0.155, -0.2), (0.11, 0.1), (-0.11, 0.1), (-0.155, -0.2)], main(1.0))
    p.circle(0.0, -0.385, 0.1, skin)
    p.polygon(ellipse_points(0.0, -0.41, 0.105, 0.085, 0.0, 24)[12:], hair)


def draw_boat(p: Painter, rng: np.random.Generator) -> None:
    """Sailing boat: hull in the main colour with portholes, mast, main sail and jib. Extent (1.0, 0.9)."""
    p.line(0.0, -0.45, 0.0, 0.14, 0.03, fixed(pal.MAST))
    p.polygon([(0.03, -0.42), (0.03, 0.06), (0.42, 0.06)], fixed(pal.SAIL))
    p.polygon([(-0.03, -0.33), (-0.03, 0.06), (-0.32, 0.06)], fixed((226, 224, 214)))
    p.polygon([(-0.5, 0.12), (0.5, 0.12), (0.34, 0.42), (-0.3, 0.42)], main(1.0))
    p.polygon([(-0.5, 0.12), (0.5, 0.12), (0.47, 0.18), (-0.47, 0.18)], main(0.7))
    for x in (-0.2, 0.0, 0.2):
        p.circle(x, 0.27, 0.035, fixed(pal.GLASS))
    if rng.integers(2):
        p.polygon([(0.015, -0.45), (0.14, -0.42), (0.015, -0.39)], fixed(pal.LAMP_RED))


def draw_traffic_light(p: Painter, rng: np.random.Generator) -> None:
    """Pole, housing in the main colour, red/amber/green lamps (one lit). Extent (0.3, 1.0)."""
    p.rect(-0.035, 0.05, 0.035, 0.47, fixed(pal.POLE))
    p.rect(-0.1, 0.46, 0.1, 0.5, fixed(pal.POLE))
    p.polygon(_rounded_rect(-0.15, -0.5, 0.15, 0.08, 0.05), main(1.0))
    lit = int(rng.integers(3))
    for k, (y, colour) in enumerate(((-0.36, pal.LAMP_RED), (-0.21, pal.LAMP_AMBER), (-0.06, pal.LAMP_GREEN))):
        p.circle(0.0, y, 0.085, fixed(pal.TYRE))
        dim = tuple(int(c * 0.35 + 20) for c in colour)
        p.circle(0.0, y, 0.065, fixed(colour if k == lit else dim))


def draw_flower(p: Painter, rng: np.random.Generator) -> None:
    """Stem with two leaves, a ring of petals in the main colour, a contrasting centre. Extent (0.6, 1.0)."""
    n_petals = int(rng.integers(5, 9))
    offset = float(rng.uniform(0, 360 / n_petals))
    leaf = fixed((60, 150, 60))
    p.line(0.0, -0.2, 0.0, 0.5, 0.045, fixed(pal.STEM))
    p.ellipse(-0.11, 0.22, 0.11, 0.04, leaf, rotation=-30)
    p.ellipse(0.11, 0.3, 0.11, 0.04, leaf, rotation=30)
    for k in range(n_petals):
        a = offset + 360.0 * k / n_petals
        rad = math.radians(a)
        p.ellipse(0.175 * math.cos(rad), -0.2 - 0.175 * math.sin(rad), 0.125, 0.065, main(1.0), rotation=a)
    p.circle(0.0, -0.2, 0.085, fixed(_pick(rng, pal.FLOWER_CENTRE)))


def draw_bicycle(p: Painter, rng: np.random.Generator) -> None:
    """Two spoked wheels, a diamond frame in the main colour, saddle and handlebar. Extent (1.0, 0.6)."""
    dark = fixed(pal.TYRE)
    frame = main(1.0)
    rear, front, bracket = (-0.3, 0.1), (0.3, 0.1), (0.0, 0.1)
    seat, head = (-0.08, -0.14), (0.2, -0.14)
    for cx, cy in (rear, front):
        p.ring(cx, cy, 0.2, 0.16, dark)
        for k in range(4):
            a = math.radians(45 * k + 20)
            dx, dy = 0.16 * math.cos(a), 0.16 * math.sin(a)
            p.line(cx - dx, cy - dy, cx + dx, cy + dy, 0.012, fixed(pal.HUB))
    w = 0.04
    for a, b in ((rear, seat), (seat, bracket), (bracket, rear), (seat, head), (bracket, head), (head, front)):
        p.line(a[0], a[1], b[0], b[1], w, frame)
    p.line(-0.08, -0.14, -0.1, -0.22, 0.03, fixed(pal.POLE))
    p.polygon([(-0.2, -0.25), (-0.02, -0.25), (-0.04, -0.21), (-0.17, -0.21)], dark)
    p.line(0.2, -0.14, 0.18, -0.25, 0.03, fixed(pal.POLE))
    p.line(0.13, -0.27, 0.27, -0.27, 0.04, dark)
    p.circle(0.0, 0.1, 0.04, fixed(pal.HUB))
    p.line(0.0, 0.1, 0.05, 0.18, 0.025, dark)


def draw_bus(p: Painter, rng: np.random.Generator) -> None:
    """Side view: long box with a row of windows, door, stripe, two wheels. Extent (1.0, 0.55)."""
    p.polygon(_rounded_rect(-0.5, -0.275, 0.5, 0.2, 0.05), main(1.0))
    p.rect(-0.5, 0.03, 0.5, 0.07, main(0.7))
    for k in range(5):
        x0 = -0.44 + 0.155 * k
        p.rect(x0, -0.21, x0 + 0.125, -0.06, fixed(pal.GLASS))
    p.rect(0.34, -0.21, 0.44, 0.15, fixed(pal.GLASS))
    p.line(0.39, -0.21, 0.39, 0.15, 0.012, fixed(pal.POLE))
    p.rect(0.46, 0.09, 0.5, 0.14, fixed(pal.HEADLIGHT))
    for x in (-0.3, 0.22):
        _wheel(p, x, 0.17, 0.105)


def draw_umbrella(p: Painter, rng: np.random.Generator) -> None:
    """Open umbrella: scalloped canopy in the main colour with ribs, tip, shaft and J handle. Extent (0.9, 1.0)."""
    n_panels = int(rng.integers(4, 7))
    rx, ry, cy = 0.45, 0.42, -0.05
    # Canopy: the upper half-ellipse, closed by scallops that bulge upwards between the rib ends.
    top = ellipse_points(0.0, cy, rx, ry, 0.0, 64)
    top = top[top[:, 1] <= cy + 1e-9]
    top = top[np.argsort(-top[:, 0])]  # from right (+rx) to left (-rx) over the top
    edges = np.linspace(-rx, rx, n_panels + 1)
    bottom = []
    for a, b in itertools.pairwise(edges):
        t = np.linspace(0.0, math.pi, 10)
        bottom.extend(zip(a + (b - a) * (1 - np.cos(t)) / 2, cy - 0.06 * np.sin(t)))
    p.polygon(np.vstack([top, np.asarray(bottom)]), main(1.0))
    for x in edges[1:-1]:
        p.line(0.0, cy - ry + 0.01, float(x), cy, 0.012, main(0.7))
    p.line(0.0, -0.5, 0.0, cy - ry + 0.01, 0.025, fixed(pal.POLE))
    p.line(0.0, cy, 0.0, 0.425, 0.025, fixed(pal.POLE))
    hook = np.linspace(0.0, math.pi, 16)
    outer = np.stack([-0.06 + 0.075 * np.cos(hook), 0.425 + 0.075 * np.sin(hook)], axis=1)
    inner = np.stack([-0.06 + 0.045 * np.cos(hook), 0.425 + 0.045 * np.sin(hook)], axis=1)[::-1]
    p.polygon(np.vstack([outer, inner]), fixed(pal.MAST))


def draw_chair(p: Painter, rng: np.random.Generator) -> None:
    """Front view: ladder back (posts, rails), seat, four legs; painted in the main colour. Extent (0.6, 1.0)."""
    leg = main(0.72)
    p.line(-0.17, 0.06, -0.2, 0.5, 0.05, leg)
    p.line(0.17, 0.06, 0.2, 0.5, 0.05, leg)
    p.line(-0.265, 0.1, -0.272, 0.44, 0.05, main(0.85))
    p.line(0.265, 0.1, 0.272, 0.44, 0.05, main(0.85))
    p.rect(-0.25, -0.5, -0.18, 0.06, main(1.0))
    p.rect(0.18, -0.5, 0.25, 0.06, main(1.0))
    for y in (-0.46, -0.33, -0.2):
        p.rect(-0.18, y, 0.18, y + 0.07, main(1.0))
    p.polygon([(-0.22, 0.0), (0.22, 0.0), (0.3, 0.1), (-0.3, 0.1)], main(0.9))
    p.rect(-0.3, 0.1, 0.3, 0.14, main(0.6))


def draw_airplane(p: Painter, rng: np.random.Generator) -> None:
    """Side view: fuselage in the main colour, tail fin, swept wing, engine, cabin windows. Extent (1.0, 0.5)."""
    p.polygon([(-0.46, 0.0), (-0.45, -0.25), (-0.37, -0.25), (-0.24, 0.0)], main(0.85))
    p.polygon([(0.1, 0.02), (-0.12, 0.23), (-0.22, 0.23), (-0.06, 0.02)], main(0.7))
    body = ellipse_points(0.0, 0.0, 1.0, 1.0, 0.0, 32)
    nose = body[body[:, 0] >= 0] * [0.12, 0.075] + [0.38, 0.005]
    tail = [(-0.5, -0.035), (-0.5, -0.01), (-0.36, 0.08)]
    p.polygon(np.vstack([nose[np.argsort(np.arctan2(nose[:, 1] - 0.005, nose[:, 0] - 0.38))], tail]), main(1.0))
    p.polygon([(-0.38, -0.07), (0.38, -0.07), (0.38, 0.08), (-0.36, 0.08), (-0.5, -0.035)], main(1.0))
    p.polygon([(-0.44, -0.02), (-0.3, -0.02), (-0.34, 0.02), (-0.46, 0.02)], main(0.7))
    p.polygon(_rounded_rect(-0.05, 0.1, 0.12, 0.17, 0.03), fixed((70, 72, 80)))
    for k in range(9):
        p.circle(-0.26 + 0.065 * k, -0.02, 0.018, fixed(pal.GLASS))
    p.polygon([(0.42, -0.045), (0.47, -0.045), (0.49, -0.02), (0.43, -0.02)], fixed(pal.GLASS))


_CLASSES = (
    ObjectClass("car", (1.0, 0.6), draw_car),
    ObjectClass("house", (0.9, 1.0), draw_house),
    ObjectClass("tree", (0.7, 1.0), draw_tree),
    ObjectClass("person", (0.45, 1.0), draw_person),
    ObjectClass("boat", (1.0, 0.9), draw_boat),
    ObjectClass("traffic_light", (0.3, 1.0), draw_traffic_light),
    ObjectClass("flower", (0.6, 1.0), draw_flower),
    ObjectClass("bicycle", (1.0, 0.6), draw_bicycle),
    ObjectClass("bus", (1.0, 0.55), draw_bus),
    ObjectClass("umbrella", (0.9, 1.0), draw_umbrella),
    ObjectClass("chair", (0.6, 1.0), draw_chair),
    ObjectClass("airplane", (1.0, 0.5), draw_airplane),
)

#: Every drawable class by name, in :data:`envs.scenes.types.OBJECT_CLASSES` order.
OBJECT_DRAWERS: dict[str, ObjectClass] = {c.name: c for c in _CLASSES}
if tuple(OBJECT_DRAWERS) != OBJECT_CLASSES:  # pragma: no cover - guards edits of either list
    raise RuntimeError("envs.scenes.objects drawers are out of sync with OBJECT_CLASSES")

#: Opacity of the dark outline drawn under every object (helps the silhouette on any background).
OUTLINE_ALPHA = 0.55


def get_object_class(class_name: str) -> ObjectClass:
    """The :class:`ObjectClass` of ``class_name``; ``ValueError`` naming the known classes otherwise."""
    try:
        return OBJECT_DRAWERS[class_name]
    except KeyError:
        raise ValueError(f"unknown object class {class_name!r}; use one of {', '.join(OBJECT_CLASSES)}") from None


def draw_object_layers(
    class_name: str,
    center: tuple[float, float],
    size: float,
    angle: float,
    style_seed: int,
    region: tuple[int, int, int, int] | None = None,
    outline: bool = True,
) -> tuple[tuple[int, int, int, int], list[Layer]]:
    """Draw one object -> ``(region, layers)``.

    ``region`` (pixels, exclusive ends; default: the rotated extent padded by 3 px) is the box the layer
    masks cover; ``style_seed`` fixes the style details. With ``outline`` a soft dark outline (1 px dilation of the
    silhouette, opacity :data:`OUTLINE_ALPHA`) is added as the bottom layer.
    """
    cls = get_object_class(class_name)
    if region is None:
        region = region_for(center, size, cls.extent, angle)
    painter = Painter(center=center, size=float(size), angle=float(angle), region=region)
    cls.draw(painter, np.random.default_rng(style_seed))
    layers = painter.layers
    if outline:
        ring = cv2.dilate(painter.coverage(), np.ones((3, 3), np.uint8))
        ring = (ring.astype(np.float32) * OUTLINE_ALPHA).astype(np.uint8)
        layers = [Layer(fixed(pal.OUTLINE), ring), *layers]
    return region, layers
