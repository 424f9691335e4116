"""Goal specifications and goal features: image goals (a view of the scene) and object goals (an object image).

- **Image goal** (``ImageNav``): the goal is a cell of the scene; its feature vector is the window mean of the
  scene's patch grid at that cell (the same lookup as the agent's own observation, on the original colours),
  and in pixel mode the north-up crop around it. :func:`image_goal_candidates` lists the cells goals are drawn
  from.
- **Object goal** (``ObjectNav``): for every scene and every object class present in it, an image of one object
  of that class drawn by :func:`envs.scenes.render_object` in a colour different from every instance of the
  class in the scene (and in all its colour variants), at the instances' mean size, on the plain grey
  background. :class:`ObjectGoals` holds those images, the distance maps (cells to the nearest instance) and
  the goal feature vectors.

Goal feature of an object image (``pooling="object"``, default): the mean of the encoder's patch tokens over the
object's patches, each patch weighted by the fraction of its pixels covered by the object (pixels that differ
from the plain background). Rationale: the agent compares its observation at an instance (object patches and
some of the scene's background) to the goal; the goal's grey canvas is not part of any scene, so pooling it in
would only add a constant offset unrelated to the target class. ``pooling="image"`` averages all patches of the
goal image instead (the plain "whole goal image" baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from envs.features import SceneFeatures, StorageDType
from envs.scenes import OBJECT_CLASSES, PLAIN_BACKGROUND, Scene, distinct_colour, render_object
from envs.scenes.splits import scene_stream

logger = logging.getLogger(__name__)

GoalPooling = Literal["object", "image"]
ImageGoalMode = Literal["object", "any"]

#: Minimum RGB distance between a goal object's colour and every instance colour of its class in the scene.
GOAL_COLOUR_MIN_DISTANCE = 100.0
_GOAL_STREAM = 0x60A1  # separates goal colours from every other use of a scene's identity


def cell_box(
    bbox: tuple[int, int, int, int], patch_size: int, grid_shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (exclusive ends) -> inclusive cell box ``(r0, c0, r1, c1)`` it touches."""
    x0, y0, x1, y1 = bbox
    h, w = grid_shape
    r0, c0 = min(max(y0 // patch_size, 0), h - 1), min(max(x0 // patch_size, 0), w - 1)
    r1, c1 = min(max((y1 - 1) // patch_size, r0), h - 1), min(max((x1 - 1) // patch_size, c0), w - 1)
    return int(r0), int(c0), int(r1), int(c1)


def box_distance_map(boxes: Sequence[tuple[int, int, int, int]], grid_shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` int32 Manhattan distance from every cell to the nearest cell of any inclusive cell box."""
    if not boxes:
        raise ValueError("box_distance_map needs at least one box")
    h, w = grid_shape
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    best = np.full((h, w), np.iinfo(np.int32).max, dtype=np.int64)
    for r0, c0, r1, c1 in boxes:
        dr = np.maximum(np.maximum(r0 - rows, rows - r1), 0)  # (h, 1)
        dc = np.maximum(np.maximum(c0 - cols, cols - c1), 0)  # (1, w)
        best = np.minimum(best, dr + dc)
    return best.astype(np.int32)


def object_cell(obj_center: tuple[float, float], patch_size: int, grid_shape: tuple[int, int]) -> tuple[int, int]:
    """The cell ``(row, col)`` containing a pixel centre ``(x, y)`` (clipped to the grid)."""
    h, w = grid_shape
    return (
        int(min(max(int(obj_center[1]) // patch_size, 0), h - 1)),
        int(min(max(int(obj_center[0]) // patch_size, 0), w - 1)),
    )


def image_goal_candidates(
    scene: Scene, patch_size: int, grid_shape: tuple[int, int], mode: ImageGoalMode = "object"
) -> np.ndarray:
    """Flat cell indices ``row * w + col`` that image goals of ``scene`` are drawn from (uniformly).

    ``mode="object"``: the cells holding the centres of the scene's objects (distinctive views; scenes without
    objects, e.g. photos, fall back to every cell). ``mode="any"``: every cell.
    """
    h, w = grid_shape
    if mode == "object" and scene.objects:
        cells = {object_cell(o.center, patch_size, grid_shape) for o in scene.objects}
        return np.array(sorted(r * w + c for r, c in cells), dtype=np.int64)
    if mode not in ("object", "any"):
        raise ValueError(f"image goal mode must be 'object' or 'any', got {mode!r}")
    return np.arange(h * w, dtype=np.int64)


def object_mask(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of a :func:`render_object` image (plain background) that the object touches."""
    return np.any(image != np.asarray(PLAIN_BACKGROUND, dtype=np.uint8), axis=-1)


def patch_weights(mask: np.ndarray, patch_size: int, pooling: GoalPooling) -> np.ndarray:
    """``(H, W)`` object mask -> ``(h, w)`` float32 pooling weights summing to 1 (see the module docstring)."""
    h, w = mask.shape[0] // patch_size, mask.shape[1] // patch_size
    if pooling == "image":
        return np.full((h, w), 1.0 / (h * w), dtype=np.float32)
    if pooling != "object":
        raise ValueError(f"goal pooling must be 'object' or 'image', got {pooling!r}")
    frac = mask[: h * patch_size, : w * patch_size].reshape(h, patch_size, w, patch_size).mean(axis=(1, 3))
    total = frac.sum()
    if total <= 0:
        return np.full((h, w), 1.0 / (h * w), dtype=np.float32)
    return (frac / total).astype(np.float32)


@dataclass
class ObjectGoals:
    """Object goals of a scene set: one goal per (scene, class present), ``K`` goal images each.

    Goal ids ``scene_offsets[s] .. scene_offsets[s+1]-1`` belong to scene ``s`` (its classes in class-id order).

    Attributes:
        scene_offsets: ``(S + 1,)`` int64.
        goal_scene: ``(G,)`` scene index of each goal.
        goal_class: ``(G,)`` class id (index in :data:`envs.scenes.OBJECT_CLASSES`).
        distance_maps: ``(G, h, w)`` int32 Manhattan distance (cells) to the nearest cell of any instance.
        instance_boxes: per goal, the inclusive cell boxes ``(r0, c0, r1, c1)`` of its instances.
        goal_colours: ``(G, K, 3)`` uint8 colours of the goal images.
        goal_images: ``(G, K, P, P, 3)`` uint8 goal images (``P`` = ``goal_image_size``).
        weights: ``(G, K, hg, wg)`` float32 pooling weights over the goal images' patches.
        features: the goal images' :class:`SceneFeatures` once :meth:`encode` ran (``None`` in pixel mode).
        vectors: ``(G, K, D)`` float32 goal feature vectors (updated in place by :meth:`refresh`), or ``None``.
    """

    scene_offsets: np.ndarray
    goal_scene: np.ndarray
    goal_class: np.ndarray
    distance_maps: np.ndarray
    instance_boxes: list[list[tuple[int, int, int, int]]]
    goal_colours: np.ndarray
    goal_images: np.ndarray
    weights: np.ndarray
    features: SceneFeatures | None = None
    vectors: torch.Tensor | None = None

    @property
    def n_goals(self) -> int:
        return len(self.goal_scene)

    @property
    def n_variants(self) -> int:
        return int(self.goal_images.shape[1])

    def class_name(self, goal_id: int) -> str:
        return OBJECT_CLASSES[int(self.goal_class[goal_id])]

    def goals_of_scene(self, scene_index: int) -> range:
        return range(int(self.scene_offsets[scene_index]), int(self.scene_offsets[scene_index + 1]))

    @torch.no_grad()
    def encode(
        self,
        encoder: nn.Module,
        batch_size: int = 16,
        device: torch.device | str | None = None,
        storage_dtype: StorageDType | torch.dtype = "float32",
        cache_block: int | None = None,
    ) -> None:
        """Encode the goal images (see :meth:`SceneFeatures.from_encoder`) and pool them into ``vectors``."""
        self.features = SceneFeatures.from_encoder(
            encoder, self.goal_images, batch_size, device, storage_dtype, cache_block
        )
        self.vectors = torch.empty((self.n_goals, self.n_variants, self.features.dim), dtype=torch.float32)
        self._pool()

    @torch.no_grad()
    def refresh(self, encoder: nn.Module, batch_size: int = 16) -> None:
        """Refresh the goal features after an encoder update (in place, like :meth:`SceneFeatures.refresh`)."""
        if self.features is None:
            raise ValueError("these object goals were never encoded; call encode(encoder) first")
        self.features.refresh(encoder, batch_size)
        self._pool()

    def _pool(self) -> None:
        grids = self.features.grids.to(torch.float32)  # (G, K, hg, wg, D)
        weights = torch.from_numpy(self.weights)  # (G, K, hg, wg)
        self.vectors.copy_(torch.einsum("gkhwd,gkhw->gkd", grids, weights))


def build_object_goals(
    scenes: Sequence[Scene],
    patch_size: int,
    grid_shape: tuple[int, int],
    n_variants: int = 1,
    goal_image_size: int | None = None,
    pooling: GoalPooling = "object",
    avoid_colours: Sequence[Sequence[tuple[int, int, int]]] | None = None,
    outline: bool = True,
) -> ObjectGoals:
    """Object goals for every (scene, class present) pair (see the module docstring).

    Args:
        scenes: procedural scenes with object annotations.
        patch_size: pixels per cell (the encoder's patch size).
        grid_shape: ``(h, w)`` cells of the scenes.
        n_variants: ``K`` goal images (colours) per goal; an episode picks one at random.
        goal_image_size: side of the goal images (default ``8 * patch_size``); a multiple of ``patch_size``.
        pooling: ``"object"`` or ``"image"`` (see the module docstring).
        avoid_colours: per scene, extra colours the goal colours must avoid (the colours the scene's objects take
            in its colour variants); the instance colours of the target class are always avoided.
        outline: draw the object outline (as the scene generator does by default).
    """
    if n_variants < 1:
        raise ValueError(f"goal variants must be >= 1, got {n_variants}")
    size = 8 * patch_size if goal_image_size is None else int(goal_image_size)
    if size < patch_size or size % patch_size:
        raise ValueError(f"goal_image_size ({size}) must be a positive multiple of the patch size ({patch_size})")
    offsets = [0]
    goal_scene, goal_class, dist_maps, boxes, colours, images, weights = [], [], [], [], [], [], []
    for s, scene in enumerate(scenes):
        present = sorted({o.class_id for o in scene.objects})
        for class_id in present:
            instances = [o for o in scene.objects if o.class_id == class_id]
            inst_boxes = [cell_box(o.bbox, patch_size, grid_shape) for o in instances]
            avoid = [o.colour for o in instances]
            if avoid_colours is not None:
                avoid += [tuple(c) for c in avoid_colours[s]]
            obj_size = int(np.clip(round(float(np.mean([o.size for o in instances]))), 4, int(0.85 * size)))
            goal_scene.append(s)
            goal_class.append(class_id)
            boxes.append(inst_boxes)
            dist_maps.append(box_distance_map(inst_boxes, grid_shape))
            row_c, row_i, row_w = [], [], []
            for k in range(n_variants):
                rng = np.random.default_rng([*scene_stream(scene, _GOAL_STREAM), class_id, k])
                colour = distinct_colour(rng, avoid, GOAL_COLOUR_MIN_DISTANCE)
                image = render_object(OBJECT_CLASSES[class_id], colour, obj_size, size, None, 0.0, rng, outline=outline)
                row_c.append(colour)
                row_i.append(image)
                row_w.append(patch_weights(object_mask(image), patch_size, pooling))
            colours.append(row_c)
            images.append(row_i)
            weights.append(row_w)
        offsets.append(len(goal_scene))
    if not goal_scene:
        raise ValueError(
            "no scene has any object, so there are no object goals; ObjectNav needs procedural scenes with objects "
            "(SceneGenerator with n_objects >= (1, ...)), or use task='imagenav' for photo folders"
        )
    empty = [s for s in range(len(scenes)) if offsets[s + 1] == offsets[s]]
    if empty:
        raise ValueError(
            f"scenes {empty[:5]}{'...' if len(empty) > 5 else ''} have no objects, so ObjectNav has no target there; "
            "use scenes with n_objects >= (1, ...)"
        )
    return ObjectGoals(
        scene_offsets=np.asarray(offsets, dtype=np.int64),
        goal_scene=np.asarray(goal_scene, dtype=np.int64),
        goal_class=np.asarray(goal_class, dtype=np.int64),
        distance_maps=np.stack(dist_maps),
        instance_boxes=boxes,
        goal_colours=np.asarray(colours, dtype=np.uint8),
        goal_images=np.asarray(images, dtype=np.uint8),
        weights=np.asarray(weights, dtype=np.float32),
    )


__all__ = [
    "GOAL_COLOUR_MIN_DISTANCE",
    "GoalPooling",
    "ImageGoalMode",
    "ObjectGoals",
    "box_distance_map",
    "build_object_goals",
    "cell_box",
    "image_goal_candidates",
    "object_cell",
    "object_mask",
    "patch_weights",
]
