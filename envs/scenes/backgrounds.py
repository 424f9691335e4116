"""Procedural background textures: a per-scene base tint, smooth and fine luminance noise, and a few strokes.

Every texture is a pure function of ``(name, height, width, rng state)``; the base colour is jittered per scene
so that two grass scenes are not the same green.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np

from envs.scenes.palette import hsv_to_rgb
from envs.scenes.types import BACKGROUNDS

_SHIFT = 3
_S = float(1 << _SHIFT)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise ``(H, W) float32`` varying over ``~size/cells`` pixels."""
    coarse = rng.standard_normal((cells + 1, cells + 1), dtype=np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _fine_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Per-pixel zero-mean, unit-variance uniform noise ``(H, W) float32`` (cheap: one random byte per pixel)."""
    raw = np.frombuffer(rng.bytes(height * width), dtype=np.uint8).reshape(height, width)
    noise = raw.astype(np.float32)
    noise -= 127.5
    noise *= 1.0 / 73.9  # the standard deviation of uniform bytes
    return noise


def _luminance(*terms: tuple[float, np.ndarray]) -> np.ndarray:
    """``1 + sum(weight * noise)`` as ``(H, W) float32``."""
    lum = np.ones_like(terms[0][1])
    for weight, noise in terms:
        cv2.scaleAdd(noise, float(weight), lum, dst=lum)
    return lum


def _shade(base: tuple[int, int, int], lum: np.ndarray) -> np.ndarray:
    """Base colour times a luminance map ``(H, W) float32`` -> ``(H, W, 3) uint8`` (rounded, saturated)."""
    return cv2.merge([cv2.convertScaleAbs(lum, alpha=float(c)) for c in base])


def _strokes(image: np.ndarray, segments: np.ndarray, colour: tuple[int, int, int], antialias: bool = True) -> None:
    """Draw many open 1 px polylines ``(N, K, 2)`` (pixels, float) in one call."""
    pts = list(np.rint(segments * _S).astype(np.int32))
    cv2.polylines(image, pts, False, colour, 1, cv2.LINE_AA if antialias else cv2.LINE_8, _SHIFT)


def _jitter(rng: np.random.Generator, h: float, s: float, v: float, dh: float, ds: float, dv: float):
    return hsv_to_rgb(h + rng.uniform(-dh, dh), s + rng.uniform(-ds, ds), v + rng.uniform(-dv, dv))


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only pixel coordinate grids ``(yy, xx)``, each ``(H, W) float32``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


# --------------------------------------------------------------------------------------------------- textures
def grass(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Green meadow: smooth patches, fine noise and a few hundred short blades."""
    base = _jitter(rng, 0.29, 0.6, 0.55, 0.03, 0.1, 0.06)
    lum = _luminance((0.13, _smooth_noise(rng, height, width, 6)), (0.07, _fine_noise(rng, height, width)))
    image = _shade(base, lum)
    n = height * width // 500
    for shade in (0.62, 1.3):
        xy = rng.uniform([0, 0], [width, height], size=(n, 2))
        angle = np.radians(rng.uniform(-25, 25, n)) - math.pi / 2
        length = rng.uniform(3, 8, n)
        tip = xy + np.stack([np.cos(angle), np.sin(angle)], 1) * length[:, None]
        colour = tuple(int(min(255, c * shade)) for c in base)
        _strokes(image, np.stack([xy, tip], 1), colour, antialias=False)
    return image


def road(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Asphalt with lanes: solid edge lines and dashed lane separators, horizontal or vertical."""
    grey = rng.uniform(0.3, 0.42)
    base = _jitter(rng, 0.6, 0.04, grey, 0.05, 0.03, 0.0)
    lum = _luminance((0.05, _smooth_noise(rng, height, width, 10)), (0.1, _fine_noise(rng, height, width)))
    image = _shade(base, lum)
    vertical = bool(rng.integers(2))
    along, across = (height, width) if vertical else (width, height)
    n_lanes = int(rng.integers(3, 6))
    lane = across / n_lanes
    white, yellow = (228, 228, 222), (232, 190, 40)
    dash, gap, thick = rng.uniform(18, 30), rng.uniform(14, 24), max(2, round(across / 160))
    phase = rng.uniform(0, dash + gap)
    for k in range(n_lanes + 1):
        c = k * lane + (thick if k == 0 else -thick if k == n_lanes else 0.0)
        colour = yellow if k == n_lanes // 2 and rng.random() < 0.5 else white
        solid = k in (0, n_lanes)
        spans = [(0.0, float(along))] if solid else [(s, s + dash) for s in np.arange(-phase, along, dash + gap)]
        for s0, s1 in spans:
            a0, a1 = (c - thick / 2, s0), (c + thick / 2, s1)
            p0, p1 = ((a0[0], a0[1]), (a1[0], a1[1])) if vertical else ((a0[1], a0[0]), (a1[1], a1[0]))
            cv2.rectangle(image, (round(p0[0]), round(p0[1])), (round(p1[0]), round(p1[1])), colour, -1)
    return image


def water(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blue water: slow swells and many small light and dark wave crests."""
    base = _jitter(rng, 0.57, 0.62, 0.68, 0.03, 0.12, 0.08)
    lum = _luminance((0.12, _smooth_noise(rng, height, width, 4)), (0.03, _fine_noise(rng, height, width)))
    image = _shade(base, lum)
    n = height * width // 1400
    t = np.linspace(0.0, math.pi, 7)
    for shade in (0.72, 1.35):
        xy = rng.uniform([0, 0], [width, height], size=(n, 1, 2))
        half = rng.uniform(4, 10, size=(n, 1))
        amp = rng.uniform(1.2, 2.5, size=(n, 1))
        wave = np.stack([xy[..., 0] + half * (t[None] / math.pi * 2 - 1), xy[..., 1] - amp * np.sin(t[None])], -1)
        colour = tuple(int(min(255, c * shade)) for c in base)
        _strokes(image, wave, colour)
    return image


def sand(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Beige sand: wind ripples along a random direction and dark/light grains."""
    base = _jitter(rng, 0.11, 0.32, 0.86, 0.015, 0.08, 0.05)
    yy, xx = _grid(height, width)
    theta = rng.uniform(0, math.pi)
    k = 2 * math.pi / rng.uniform(10, 18)
    phase = cv2.addWeighted(xx, k * math.cos(theta), yy, k * math.sin(theta), 0.0)
    cv2.scaleAdd(_smooth_noise(rng, height, width, 3), 2.5, phase, dst=phase)
    ripple = np.sin(phase, out=phase)
    raw = np.frombuffer(rng.bytes(height * width), dtype=np.uint8).reshape(height, width)
    grains = cv2.LUT(raw, _GRAIN_LUT)
    lum = _luminance((0.04, ripple), (0.06, _smooth_noise(rng, height, width, 5)), (1.0, grains))
    return _shade(base, lum)


# Sand grains: about 3.5% dark (-0.18) and 2.5% light (+0.1) pixels, from one random byte per pixel.
_GRAIN_LUT = np.zeros(256, dtype=np.float32)
_GRAIN_LUT[:9] = -0.18
_GRAIN_LUT[250:] = 0.1


def snow(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """White snow with blue shadows in the hollows of soft drifts, and sparkles."""
    base = _jitter(rng, 0.58, 0.05, 0.95, 0.02, 0.03, 0.03)
    drift = _smooth_noise(rng, height, width, 5)
    lum = _luminance((0.04, drift), (0.02, _fine_noise(rng, height, width)))
    hollow = cv2.min(drift, 0.0)  # <= 0 in the hollows
    channels = []
    for c, tint in zip(base, (14.0, 8.0, 0.0)):
        channel = cv2.scaleAdd(hollow, tint, cv2.multiply(lum, float(c)))
        channels.append(cv2.convertScaleAbs(cv2.max(channel, 0.0)))
    image = cv2.merge(channels)
    raw = np.frombuffer(rng.bytes(height * width), dtype=np.uint8).reshape(height, width)
    image[raw == 255] = 255
    return image


def pavement(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Paving stones: tiles in a running-bond pattern with per-tile tint, grout lines and grain."""
    base = _jitter(rng, 0.08, 0.12, 0.68, 0.05, 0.08, 0.08)
    tile = int(rng.integers(22, 40))
    ox, oy = int(rng.integers(tile)), int(rng.integers(tile))
    rows, cols = (height + oy) // tile + 1, (width + ox + tile) // tile + 1
    tint = rng.standard_normal((rows, cols), np.float32)
    # Tile index of every pixel; odd rows are shifted by half a tile (running bond).
    yy = np.arange(height) + oy
    xx = np.arange(width) + ox
    r = yy // tile
    shifted = xx[None, :] + (r[:, None] % 2) * (tile // 2)
    tiles = tint[r[:, None], shifted // tile]
    lum = _luminance((0.09, tiles), (0.06, _fine_noise(rng, height, width)))
    grout = ((yy % tile) < 2)[:, None] | (shifted % tile < 2)
    lum[grout] = 0.62
    return _shade(base, lum)


_TEXTURES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "grass": grass,
    "road": road,
    "water": water,
    "sand": sand,
    "snow": snow,
    "pavement": pavement,
}
if tuple(_TEXTURES) != BACKGROUNDS:  # pragma: no cover - guards edits of either list
    raise RuntimeError("envs.scenes.backgrounds textures are out of sync with BACKGROUNDS")


def check_background(name: str) -> str:
    """``name`` if it is a known background; ``ValueError`` naming the known ones otherwise."""
    if name not in _TEXTURES:
        raise ValueError(f"unknown background {name!r}; use one of {', '.join(BACKGROUNDS)}")
    return name


def render_background(name: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Background ``name`` as ``(height, width, 3) uint8`` RGB, drawn from ``rng``."""
    return _TEXTURES[check_background(name)](rng, int(height), int(width))
