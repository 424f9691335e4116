"""The oracle feature space: per-cell ground truth from the scene generator, served through the feature-grid contract.

The procedural generator knows every object's class and box and every scene's background, so each grid cell can be
described exactly, with no encoder: a multi-hot of the object classes whose box touches the cell (the cells the
ObjectNav distance maps count as the object's, :func:`envs.goals.cell_box`) and a one-hot of the scene's background.
The description is the same under every colour variant (recolouring changes no class), so it is the feature space in
which the "car colour problem" cannot exist: the positive control of every study (``observation="oracle"`` in the
environments, ``--curiosity.space oracle`` in the trainer).

Layout of a cell's vector (:data:`ORACLE_DIM` values): ``[classes (len(OBJECT_CLASSES)) | backgrounds
(len(BACKGROUNDS)) | screen]``. An ObjectNav goal is the class one-hot with the other parts zero.

A TV (:mod:`envs.tv`) is described by what it means, frame by frame: a screen sets the ``screen`` channel on its cells
in every frame (its noise is no thing); the colour TV's object sets its class channel (its hue is no thing); the class
TV sets the screen and the class of the object it shows, which changes with the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from envs.features import SceneFeatures
from envs.goals import cell_box
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, Scene
from envs.tv import TV

N_CLASSES = len(OBJECT_CLASSES)
#: The channel that marks a TV screen.
SCREEN_CHANNEL = N_CLASSES + len(BACKGROUNDS)
#: Width of an oracle cell vector: the object classes, the backgrounds, the screen.
ORACLE_DIM = SCREEN_CHANNEL + 1


def oracle_grid(scene: Scene, patch_size: int, grid_shape: tuple[int, int]) -> np.ndarray:
    """``(h, w, ORACLE_DIM)`` float32: per cell, the classes of the objects whose box touches it and the background."""
    if scene.background not in BACKGROUNDS:
        raise ValueError(
            f"scene {scene.scene_id} ({scene.source or scene.split}) has no procedural background "
            f"({scene.background!r}), so it has no ground truth: the oracle needs procedural scenes "
            "(envs.scenes.SceneGenerator), not photo folders"
        )
    h, w = grid_shape
    grid = np.zeros((h, w, ORACLE_DIM), dtype=np.float32)
    grid[:, :, N_CLASSES + BACKGROUNDS.index(scene.background)] = 1.0
    for obj in scene.objects:
        r0, c0, r1, c1 = cell_box(obj.bbox, patch_size, grid_shape)
        grid[r0 : r1 + 1, c0 : c1 + 1, obj.class_id] = 1.0
    return grid


def oracle_features(
    scenes: Sequence[Scene], n_variants: int, patch_size: int, grid_shape: tuple[int, int], tv: TV | None = None
) -> SceneFeatures:
    """A :class:`SceneFeatures` of oracle grids ``(S, V, h, w, ORACLE_DIM)``: identical across colour variants; with a
    ``tv`` (``V`` = its frames) the TV cells of each frame describe what it shows (see the module docstring)."""
    grids = np.stack([oracle_grid(s, patch_size, grid_shape) for s in scenes])  # (S, h, w, C)
    grids = np.repeat(grids[:, None], n_variants, axis=1)
    if tv is not None:
        for s, (r0, c0, r1, c1) in enumerate(tv.boxes.tolist()):
            cells = grids[s, :, r0 : r1 + 1, c0 : c1 + 1]  # (V, th, tw, C), a view
            cells[..., SCREEN_CHANNEL] = float(tv.screen)
            for p, class_id in enumerate(tv.frame_classes[s].tolist()):
                if class_id >= 0:
                    cells[p, :, :, class_id] = 1.0
    return SceneFeatures(torch.from_numpy(np.ascontiguousarray(grids)), patch_size)


def oracle_goal_vectors(goal_class: np.ndarray, n_variants: int) -> torch.Tensor:
    """``(G, K, ORACLE_DIM)`` float32 ObjectNav goal vectors: the class one-hot, the same for the ``K`` goal images."""
    vectors = torch.zeros((len(goal_class), n_variants, ORACLE_DIM), dtype=torch.float32)
    vectors[torch.arange(len(goal_class)), :, torch.as_tensor(goal_class, dtype=torch.long)] = 1.0
    return vectors


__all__ = ["N_CLASSES", "ORACLE_DIM", "SCREEN_CHANNEL", "oracle_features", "oracle_goal_vectors", "oracle_grid"]
