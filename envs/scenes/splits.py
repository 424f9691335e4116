"""Seeds of the train/val/test scene streams: one integer per ``(base_seed, split, scene_id)``, never shared.

The map is injective by construction: ``seed = ((base_seed * len(SPLITS) + split_index) << 32) | scene_id`` with
``0 <= scene_id < 2**32``, so two different ``(base_seed, split, scene_id)`` never give the same seed, and
``np.random.default_rng(seed)`` streams of different seeds are independent (NumPy's ``SeedSequence`` hashing).
"""

from __future__ import annotations

from envs.scenes.types import SPLITS, Scene

#: Number of scene ids per split and base seed.
MAX_SCENE_ID = 2**32


def split_index(split: str) -> int:
    """Position of ``split`` in :data:`envs.scenes.types.SPLITS`; ``ValueError`` for anything else."""
    try:
        return SPLITS.index(split)
    except ValueError:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}") from None


def scene_stream(scene: Scene, stream: int) -> list[int]:
    """Entropy ``[stream, split, scene_id]`` of a use (``stream``) of one scene: its draws are the same every time and
    never those of another use or scene (photo scenes without a known split share one split index)."""
    split = SPLITS.index(scene.split) if scene.split in SPLITS else len(SPLITS)
    return [int(stream), split, int(scene.scene_id)]


def split_seed(split: str, scene_id: int, base_seed: int = 0) -> int:
    """The RNG seed of scene ``scene_id`` of ``split`` (distinct for every distinct argument triple)."""
    if not 0 <= int(scene_id) < MAX_SCENE_ID:
        raise ValueError(f"scene_id must be in [0, 2**32), got {scene_id}")
    if int(base_seed) < 0:
        raise ValueError(f"base_seed must be >= 0, got {base_seed}")
    return ((int(base_seed) * len(SPLITS) + split_index(split)) << 32) | int(scene_id)
