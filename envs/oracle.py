"""The oracle feature space: per-cell ground truth from the scene generator, served through the feature-grid contract.

The procedural generator knows every object's class and box and every scene's background, so each grid cell can be
described exactly, with no encoder: a multi-hot of the object classes whose box touches the cell (the cells the
ObjectNav distance maps count as the object's, :func:`envs.goals.cell_box`) and a one-hot of the scene's background.
The description is the same under every colour variant (recolouring changes no class), so it is the feature space in
which the "car colour problem" cannot exist: the positive control of every study (``observation="oracle"`` in the
environments, ``--curiosity.space oracle`` in the trainer).

Layout of a cell's vector (:data:`ORACLE_DIM` values): ``[classes (len(OBJECT_CLASSES)) | backgrounds
(len(BACKGROUNDS))]``. An ObjectNav goal is the class one-hot with the background part zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from envs.features import SceneFeatures
from envs.goals import cell_box
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, Scene

N_CLASSES = len(OBJECT_CLASSES)
#: Width of an oracle cell vector: the object classes, then the backgrounds.
ORACLE_DIM = N_CLASSES + len(BACKGROUNDS)


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
    scenes: Sequence[Scene], n_variants: int, patch_size: int, grid_shape: tuple[int, int]
) -> SceneFeatures:
    """A :class:`SceneFeatures` of oracle grids ``(S, V, h, w, ORACLE_DIM)``, identical across the ``V`` variants."""
    grids = np.stack([oracle_grid(s, patch_size, grid_shape) for s in scenes])  # (S, h, w, C)
    grids = np.repeat(grids[:, None], n_variants, axis=1)
    return SceneFeatures(torch.from_numpy(np.ascontiguousarray(grids)), patch_size)


def oracle_goal_vectors(goal_class: np.ndarray, n_variants: int) -> torch.Tensor:
    """``(G, K, ORACLE_DIM)`` float32 ObjectNav goal vectors: the class one-hot, the same for the ``K`` goal images."""
    vectors = torch.zeros((len(goal_class), n_variants, ORACLE_DIM), dtype=torch.float32)
    vectors[torch.arange(len(goal_class)), :, torch.as_tensor(goal_class, dtype=torch.long)] = 1.0
    return vectors


__all__ = ["N_CLASSES", "ORACLE_DIM", "oracle_features", "oracle_goal_vectors", "oracle_grid"]
