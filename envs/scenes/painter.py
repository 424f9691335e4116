"""Layered, antialiased drawing of one object in its own coordinate frame, and compositing onto a background.

An object is drawn as an ordered list of *layers*. Each layer has one colour *spec* and an 8-bit coverage mask
(antialiased with ``cv2.LINE_AA`` and sub-pixel coordinates). A spec is either ``("main", shade)`` (the object's
main colour times ``shade``) or ``("fixed", (r, g, b))`` (a detail colour that never changes: wheels, windows,
lamps, ...). Because the masks do not depend on the main colour, the same masks composite the object in any
colour; this is what makes colour variants cheap and bit-exact (see :mod:`envs.scenes.variants`).

Object coordinates: the origin is the centre of the object's upright bounding box, ``x`` points right and ``y``
points down, and one unit is ``size`` pixels, so an object whose extent is ``(w, h)`` (with ``max(w, h) == 1``)
spans ``[-w/2, w/2] x [-h/2, h/2]``. The frame is rotated by ``angle`` degrees counter-clockwise (as seen on
screen) around the origin and placed at ``center`` (pixels) in the image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

Colour = tuple[int, int, int]
ColourSpec = tuple[str, float] | tuple[str, Colour]

_SHIFT = 4  # sub-pixel bits for cv2 drawing (1/16 pixel)
_SCALE = float(1 << _SHIFT)


def main(shade: float = 1.0) -> ColourSpec:
    """Colour spec for the object's main colour times ``shade`` (``shade < 1`` darkens, ``> 1`` lightens)."""
    return ("main", float(shade))


def fixed(colour: Colour) -> ColourSpec:
    """Colour spec for a detail colour that does not change with the main colour."""
    return ("fixed", (int(colour[0]), int(colour[1]), int(colour[2])))


def rotated_extent(width: float, height: float, angle: float) -> tuple[float, float]:
    """Width and height of the axis-aligned box around a ``width x height`` box rotated by ``angle`` degrees."""
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    return width * c + height * s, width * s + height * c


def region_for(
    center: tuple[float, float], size: float, extent: tuple[float, float], angle: float, pad: int = 3
) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (exclusive ends) that contains every pixel the object can touch.

    ``extent`` is the object's upright ``(w, h)`` in object units; ``pad`` covers antialiased edges and the
    1 px outline.
    """
    w, h = rotated_extent(extent[0] * size, extent[1] * size, angle)
    cx, cy = center
    return (
        math.floor(cx - w / 2) - pad,
        math.floor(cy - h / 2) - pad,
        math.ceil(cx + w / 2) + pad + 1,
        math.ceil(cy + h / 2) + pad + 1,
    )


@dataclass
class Layer:
    """One colour spec and its coverage mask ``(h, w) uint8`` over the painter's region."""

    spec: ColourSpec
    mask: np.ndarray


@dataclass
class Painter:
    """Draws filled shapes in object coordinates into per-colour coverage layers over a pixel ``region``.

    Consecutive shapes with the same colour spec share one layer; a new spec starts a new layer on top.
    """

    center: tuple[float, float]
    size: float
    angle: float
    region: tuple[int, int, int, int]
    layers: list[Layer] = field(default_factory=list)

    def __post_init__(self) -> None:
        rad = math.radians(self.angle)
        c, s = math.cos(rad), math.sin(rad)
        # Counter-clockwise on screen with y pointing down: x' = x c + y s, y' = -x s + y c.
        self._matrix = np.array([[c, s], [-s, c]], dtype=np.float64) * self.size
        self._offset = np.array([self.center[0] - self.region[0], self.center[1] - self.region[1]], dtype=np.float64)
        self._shape = (self.region[3] - self.region[1], self.region[2] - self.region[0])

    # ----------------------------------------------------------------------------------------- internals
    def _to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Object coordinates ``(N, 2)`` -> fixed-point pixel coordinates in the region ``(N, 2) int32``."""
        pix = points @ self._matrix.T + self._offset
        return np.rint(pix * _SCALE).astype(np.int32)

    def _mask(self, spec: ColourSpec) -> np.ndarray:
        if not self.layers or self.layers[-1].spec != spec:
            self.layers.append(Layer(spec, np.zeros(self._shape, dtype=np.uint8)))
        return self.layers[-1].mask

    # ----------------------------------------------------------------------------------------- shapes
    def polygon(self, points: Sequence[tuple[float, float]] | np.ndarray, spec: ColourSpec) -> None:
        """Filled polygon through ``points`` (object coordinates)."""
        pts = self._to_pixels(np.asarray(points, dtype=np.float64))
        cv2.fillPoly(self._mask(spec), [pts], 255, cv2.LINE_AA, _SHIFT)

    def polygons(self, contours: Sequence[np.ndarray], spec: ColourSpec) -> None:
        """Several contours filled together (even-odd: an inner contour cuts a hole, e.g. a ring)."""
        pts = [self._to_pixels(np.asarray(c, dtype=np.float64)) for c in contours]
        cv2.fillPoly(self._mask(spec), pts, 255, cv2.LINE_AA, _SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, spec: ColourSpec) -> None:
        """Filled rectangle with corners ``(x0, y0)`` and ``(x1, y1)``."""
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], spec)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, spec: ColourSpec, rotation: float = 0.0, n: int = 0
    ) -> None:
        """Filled ellipse with semi-axes ``rx, ry``, rotated by ``rotation`` degrees counter-clockwise."""
        self.polygon(ellipse_points(cx, cy, rx, ry, rotation, n or self._n_points(max(rx, ry))), spec)

    def circle(self, cx: float, cy: float, r: float, spec: ColourSpec) -> None:
        """Filled circle of radius ``r``."""
        self.ellipse(cx, cy, r, r, spec)

    def ring(self, cx: float, cy: float, r_outer: float, r_inner: float, spec: ColourSpec) -> None:
        """Annulus between ``r_inner`` and ``r_outer``."""
        n = self._n_points(r_outer)
        outer = ellipse_points(cx, cy, r_outer, r_outer, 0.0, n)
        inner = ellipse_points(cx, cy, r_inner, r_inner, 0.0, n)[::-1]
        self.polygons([outer, inner], spec)

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float, spec: ColourSpec) -> None:
        """Straight stroke of ``width`` (object units) with square ends that stop at the end points."""
        dx, dy = x1 - x0, y1 - y0
        length = math.hypot(dx, dy)
        if length == 0:
            return
        nx, ny = -dy / length * width / 2, dx / length * width / 2
        self.polygon([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], spec)

    def _n_points(self, radius: float) -> int:
        return int(min(64, max(12, radius * self.size * 1.2)))

    # ----------------------------------------------------------------------------------------- results
    def coverage(self) -> np.ndarray:
        """Union of all layers ``(h, w) uint8`` (0 where the object does not touch the pixel)."""
        if not self.layers:
            return np.zeros(self._shape, dtype=np.uint8)
        out = self.layers[0].mask.copy()
        for layer in self.layers[1:]:
            np.maximum(out, layer.mask, out=out)
        return out


@functools.lru_cache(maxsize=128)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


def ellipse_points(cx: float, cy: float, rx: float, ry: float, rotation: float, n: int) -> np.ndarray:
    """``(n, 2)`` points on an ellipse in object coordinates."""
    cos, sin = _unit_circle(n)
    x, y = rx * cos, ry * sin
    if rotation:
        rad = math.radians(rotation)
        c, s = math.cos(rad), math.sin(rad)
        x, y = x * c + y * s, -x * s + y * c
    return np.stack([x + cx, y + cy], axis=1)


def resolve(spec: ColourSpec, main_colour: Colour) -> np.ndarray:
    """The RGB value ``(3,) float32`` of a colour spec for a given main colour."""
    kind, value = spec
    if kind == "main":
        return np.clip(np.asarray(main_colour, dtype=np.float32) * np.float32(value), 0.0, 255.0)
    return np.asarray(value, dtype=np.float32)


def composite(background: np.ndarray, layers: Sequence[Layer], main_colour: Colour) -> np.ndarray:
    """Paint ``layers`` in order over ``background`` ``(h, w, 3) uint8`` -> ``(h, w, 3) uint8``.

    Straight alpha blending in float32 with one rounding at the end, so the result is a pure function of the
    background, the masks and the main colour (colour variants rely on this).
    """
    out = background.astype(np.float32)
    for layer in layers:
        x, y, w, h = cv2.boundingRect(layer.mask)  # only the pixels this layer touches
        if w == 0 or h == 0:
            continue
        alpha = layer.mask[y : y + h, x : x + w].astype(np.float32)
        alpha *= np.float32(1.0 / 255.0)
        sub = out[y : y + h, x : x + w]
        delta = resolve(layer.spec, main_colour) - sub
        delta *= alpha[..., None]
        sub += delta
    np.rint(out, out=out)
    return out.astype(np.uint8)  # values stay within [0, 255]: convex blends of values in [0, 255]
