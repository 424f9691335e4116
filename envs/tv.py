"""The noisy TV: a screen in the scene whose content changes in a way no action (or only a pointless one) predicts.

The experiment the project exists for asks whether curiosity in a semantic feature space ignores changes that carry
no meaning. A TV is the standard trap (Burda et al. 2018, "Large-Scale Study of Curiosity-Driven Learning", sec. 5;
Pathak et al. 2017's noise patch; RIDE's MiniGrid NoisyTV): a forward model cannot predict it, so a curiosity
reward measured in a space that sees the change keeps paying the agent for watching it.

A scene's TV is a ``cells x cells`` block of grid cells on the background, never on an object nor next to one (so
never on or next to any goal: every object is a possible goal), placed by the scene's own seed. Its content comes
from a pool of ``n_frames`` pre-rendered frames per scene; the world's variant axis holds them (variant ``p`` is the
scene with frame ``p``), so every feature space encodes each frame once and no encoder runs in a step. Modes
(:data:`TV_MODES`):

- ``"spontaneous"``: a screen whose content is redrawn every step from high-entropy noise (per frame two random
  colours on a random 6x6 block pattern: 36 blocks, 2^36 patterns).
- ``"remote"``: the same screen, redrawn only when the agent takes the extra ``remote`` action with the TV in view.
- ``"colour"``: one object of a class absent from the scene, its shape fixed, its hue changing every step (the red
  car and the blue car).
- ``"class"``: a screen showing an object whose class changes every step (classes absent from the scene: the
  semantic control, a change the oracle and any semantic encoder must notice).

Ground truth for the oracle (:mod:`envs.oracle`): the screen is a thing (a ``screen`` channel, set in every frame of
the screen modes), noise and hue are not; the class TV's class is (its class channel follows the frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from envs.goals import cell_box
from envs.scenes.layout import paste_object
from envs.scenes.objects import draw_object_layers
from envs.scenes.palette import hsv_to_rgb, random_colour
from envs.scenes.splits import scene_stream
from envs.scenes.types import OBJECT_CLASSES, Scene

TVMode = Literal["none", "spontaneous", "remote", "colour", "class"]
#: The TV modes (``"none"``: no TV).
TV_MODES: tuple[str, ...] = ("spontaneous", "remote", "colour", "class")
#: Frames per scene in the pool by default.
DEFAULT_TV_FRAMES = 64
#: Side of the TV in grid cells by default (2x2 cells is in view from 36 of 144 cells of a 12x12 grid at radius 2).
DEFAULT_TV_CELLS = 2
#: Blocks per side of the noise screen.
NOISE_BLOCKS = 6
_BEZEL = (40, 40, 44)
_TV_STREAM = 0x7E1E


@dataclass(frozen=True)
class TV:
    """The TVs of a world's scenes.

    Attributes:
        mode: one of :data:`TV_MODES`.
        boxes: ``(S, 4)`` int64 inclusive cell boxes ``(r0, c0, r1, c1)`` of each scene's TV.
        frame_classes: ``(S, P)`` int64, the object class each frame shows (index in ``OBJECT_CLASSES``; -1: none).
        screen: whether the TV is a screen (every mode but ``"colour"``).
    """

    mode: str
    boxes: np.ndarray
    frame_classes: np.ndarray
    screen: bool

    @property
    def n_frames(self) -> int:
        return int(self.frame_classes.shape[1])

    @property
    def redraws_every_step(self) -> bool:
        """Whether the content changes every step (all modes but ``"remote"``)."""
        return self.mode != "remote"

    def in_view(self, radius: int, grid_shape: tuple[int, int]) -> np.ndarray:
        """``(S, h, w)`` bool: a TV cell lies inside the ``(2r+1) x (2r+1)`` window observed from the cell."""
        h, w = grid_shape
        grid = np.zeros((len(self.boxes), h, w), dtype=bool)
        for s, (r0, c0, r1, c1) in enumerate(self.boxes.tolist()):
            grid[s, max(0, r0 - radius) : r1 + radius + 1, max(0, c0 - radius) : c1 + radius + 1] = True
        return grid


def place_tv(
    scene: Scene, patch_size: int, grid_shape: tuple[int, int], cells: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A random inclusive cell box ``(r0, c0, r1, c1)`` of ``cells x cells`` that neither touches an object's cells nor
    their 8 neighbours; ``ValueError`` if the scene has no such place."""
    h, w = grid_shape
    blocked = np.zeros((h, w), dtype=bool)
    for obj in scene.objects:
        r0, c0, r1, c1 = cell_box(obj.bbox, patch_size, grid_shape)
        blocked[max(0, r0 - 1) : r1 + 2, max(0, c0 - 1) : c1 + 2] = True
    free = [
        (r, c)
        for r in range(h - cells + 1)
        for c in range(w - cells + 1)
        if not blocked[r : r + cells, c : c + cells].any()
    ]
    if not free:
        raise ValueError(
            f"scene {scene.scene_id} ({scene.split}) has no free {cells}x{cells}-cell place for a TV away from its "
            f"{len(scene.objects)} objects; use a larger image_size or a generator with fewer objects"
        )
    r, c = free[int(rng.integers(len(free)))]
    return r, c, r + cells - 1, c + cells - 1


def _noise_frame(rng: np.random.Generator, side: int) -> np.ndarray:
    """``(side, side, 3)`` uint8: two random colours on a random ``NOISE_BLOCKS x NOISE_BLOCKS`` block pattern."""
    colours = rng.integers(0, 256, size=(2, 3), dtype=np.uint8)
    pattern = rng.integers(0, 2, size=(NOISE_BLOCKS, NOISE_BLOCKS))
    blocks = colours[pattern]  # (B, B, 3)
    edges = np.linspace(0, NOISE_BLOCKS, side, endpoint=False).astype(np.int64)
    return np.ascontiguousarray(blocks[edges][:, edges])


def _paste_class(
    canvas: np.ndarray, box_px: tuple[int, int, int, int], class_name: str, colour, style_seed: int, margin: int
) -> None:
    """Draw one object of ``class_name`` centred in ``box_px`` ``(x0, y0, x1, y1)`` of ``canvas``, in place."""
    x0, y0, x1, y1 = box_px
    centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
    size = min(x1 - x0, y1 - y0) - 2 * margin
    region = (x0, y0, x1, y1)
    _, layers = draw_object_layers(class_name, centre, size, 0.0, style_seed, region, outline=True)
    paste_object(canvas, canvas.copy(), region, layers, tuple(int(v) for v in colour))


def tv_frames(
    scene: Scene, mode: str, box: tuple[int, int, int, int], patch_size: int, n_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The scene with each of ``n_frames`` TV frames in ``box`` (inclusive cells).

    Returns:
        images ``(P, H, W, 3)`` uint8 and the class each frame shows ``(P,)`` int64 (-1: none).
    """
    if mode not in TV_MODES:
        raise ValueError(f"tv must be one of {TV_MODES} (or 'none'), got {mode!r}")
    r0, c0, r1, c1 = box
    x0, y0, x1, y1 = c0 * patch_size, r0 * patch_size, (c1 + 1) * patch_size, (r1 + 1) * patch_size
    side = min(x1 - x0, y1 - y0)
    bezel = max(1, side // 14)
    absent = [c for c in OBJECT_CLASSES if c not in {o.class_name for o in scene.objects}]
    images = np.repeat(scene.image[None], n_frames, axis=0)
    classes = np.full(n_frames, -1, dtype=np.int64)
    if mode == "colour":
        class_name = absent[int(rng.integers(len(absent)))]
        style_seed = int(rng.integers(2**63))
        hues = (rng.random() + np.arange(n_frames) / n_frames) % 1.0
        for p, hue in enumerate(rng.permutation(hues)):
            _paste_class(images[p], (x0, y0, x1, y1), class_name, hsv_to_rgb(hue, 0.85, 0.9), style_seed, 1)
        classes[:] = OBJECT_CLASSES.index(class_name)
        return images, classes
    images[:, y0:y1, x0:x1] = _BEZEL
    inner = (x0 + bezel, y0 + bezel, x1 - bezel, y1 - bezel)
    if mode in ("spontaneous", "remote"):
        for p in range(n_frames):
            images[p, inner[1] : inner[3], inner[0] : inner[2]] = _noise_frame(rng, inner[2] - inner[0])
        return images, classes
    colour = random_colour(rng)
    screen = np.full((inner[3] - inner[1], inner[2] - inner[0], 3), 230, dtype=np.uint8)
    for p in range(n_frames):
        class_name = absent[p % len(absent)]
        images[p, inner[1] : inner[3], inner[0] : inner[2]] = screen
        _paste_class(images[p], inner, class_name, colour, int(rng.integers(2**63)), 0)
        classes[p] = OBJECT_CLASSES.index(class_name)
    order = rng.permutation(n_frames)
    return images[order], classes[order]


def build_tv(
    scenes: Sequence[Scene],
    mode: str,
    patch_size: int,
    grid_shape: tuple[int, int],
    n_frames: int = DEFAULT_TV_FRAMES,
    cells: int = DEFAULT_TV_CELLS,
) -> tuple[np.ndarray, TV]:
    """Place a TV in every scene and render its frame pool.

    Returns:
        images ``(S, P, H, W, 3)`` uint8 (variant ``p``: frame ``p``) and the :class:`TV` record.
    """
    if mode not in TV_MODES:
        raise ValueError(f"tv must be one of {TV_MODES} (or 'none'), got {mode!r}")
    if n_frames < 2:
        raise ValueError(f"tv_frames must be >= 2 frames per scene, got {n_frames}")
    if not 1 <= cells <= min(grid_shape):
        raise ValueError(f"tv_cells must be in [1, {min(grid_shape)}] for a {grid_shape} grid, got {cells}")
    images, boxes, classes = [], [], []
    for scene in scenes:
        if scene.layout is None:
            raise ValueError("a TV needs procedural scenes (envs.scenes.SceneGenerator), not photo folders")
        rng = np.random.default_rng(scene_stream(scene, _TV_STREAM))
        box = place_tv(scene, patch_size, grid_shape, cells, rng)
        frames, frame_classes = tv_frames(scene, mode, box, patch_size, n_frames, rng)
        images.append(frames)
        boxes.append(box)
        classes.append(frame_classes)
    tv = TV(mode, np.asarray(boxes, dtype=np.int64), np.stack(classes), screen=mode != "colour")
    return np.stack(images), tv


__all__ = ["DEFAULT_TV_CELLS", "DEFAULT_TV_FRAMES", "TV", "TV_MODES", "TVMode", "build_tv", "place_tv", "tv_frames"]
