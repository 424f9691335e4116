"""Where pretraining and distillation images come from: a folder (``--data DIR``), or a procedural source of the
environment's scene generator (``--data objects:N``), resolved here so that ``encoders/`` never imports ``envs/``.

``objects:N`` is ``N`` procedural objects per class (12 classes), each rendered as two views that share the object
instance (class and style details) and nothing else: background, colour, size, pose and position are drawn
independently (:class:`envs.scenes.object_set.ObjectViewPairs`). The two global crops of a sample then differ in
exactly the nuisances the encoder should ignore. ``objects:N:aligned`` keeps view 0's size, pose and position in
view 1 (only background and colour differ); ``objects:N:plain`` draws view 1 on a plain grey background (the
object is then all that view 1 shows); ``objects:N:single`` renders one view per object (the images
``python -m envs.scenes.object_set --per-class N`` writes to a folder).
"""

from __future__ import annotations

from typing import Any

from encoders.train.config import TrainLoopConfig

PROCEDURAL_PREFIX = "objects:"


def procedural_images(cfg: TrainLoopConfig) -> Any | None:
    """The dataset that ``cfg.data`` names when it is a procedural spec (``objects:N[:aligned|:plain|:single]``);
    ``None`` for a folder. Objects are rendered at the global crop size's 112-px native resolution of the object set."""
    spec = cfg.data
    if not spec.startswith(PROCEDURAL_PREFIX):
        return None
    from envs.scenes.object_set import PLAIN, ObjectViewPairs

    parts = spec[len(PROCEDURAL_PREFIX) :].split(":")
    try:
        per_class = int(parts[0])
    except ValueError:
        per_class = 0
    mode = parts[1] if len(parts) > 1 else "paired"
    if per_class < 1 or mode not in ("paired", "aligned", "plain", "single") or len(parts) > 2:
        raise ValueError(
            f"--data {spec!r}: expected objects:N, objects:N:aligned, objects:N:plain or objects:N:single with "
            "N >= 1 objects per class (e.g. objects:100), or a folder of images"
        )
    return ObjectViewPairs(
        per_class, "train", paired=mode != "single", view_geometry="same" if mode == "aligned" else "redrawn",
        second_backgrounds=(PLAIN,) if mode == "plain" else None, seed=cfg.train.seed,
    )  # fmt: skip


__all__ = ["PROCEDURAL_PREFIX", "procedural_images"]
