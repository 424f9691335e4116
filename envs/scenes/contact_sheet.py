"""A contact sheet of the procedural scenes: example scenes, colour variants, and one object per class.

python -m envs.scenes.contact_sheet --out docs/figures/scenes_examples.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from envs.scenes.generator import SceneGenerator
from envs.scenes.object_set import sample_object
from envs.scenes.types import OBJECT_CLASSES

_WHITE = (255, 255, 255)
_INK = (20, 20, 20)


def _caption(image: np.ndarray, text: str, height: int = 26) -> np.ndarray:
    """``image`` with a white band and ``text`` underneath."""
    band = np.full((height, image.shape[1], 3), 255, dtype=np.uint8)
    scale = 0.45 if image.shape[1] < 200 else 0.55
    cv2.putText(band, text, (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, _INK, 1, cv2.LINE_AA)
    return np.concatenate([image, band], axis=0)


def _title(width: int, text: str, height: int = 34) -> np.ndarray:
    band = np.full((height, width, 3), 255, dtype=np.uint8)
    cv2.putText(band, text, (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, _INK, 2, cv2.LINE_AA)
    return band


def _row(panels: Sequence[np.ndarray], width: int, gap: int = 4) -> np.ndarray:
    """Panels side by side with ``gap`` white pixels between them, padded to ``width``."""
    parts = []
    for k, p in enumerate(panels):
        if k:
            parts.append(np.full((p.shape[0], gap, 3), 255, dtype=np.uint8))
        parts.append(p)
    row = np.concatenate(parts, axis=1)
    pad = width - row.shape[1]
    if pad > 0:
        row = np.concatenate([row, np.full((row.shape[0], pad, 3), 255, dtype=np.uint8)], axis=1)
    return row


def _distinct_backgrounds(gen: SceneGenerator, n: int, split: str = "train", max_id: int = 200) -> list[int]:
    """The first ``n`` scene ids of ``split`` whose backgrounds all differ (fewer if ``max_id`` is reached)."""
    ids, seen = [], set()
    for i in range(max_id):
        background = gen.sample_layout(i, split).background
        if background not in seen:
            seen.add(background)
            ids.append(i)
            if len(ids) == n:
                break
    return ids


def make_contact_sheet(generator: SceneGenerator | None = None) -> np.ndarray:
    """The sheet as ``(H, W, 3) uint8`` RGB (four train scenes with different backgrounds, colour variants of
    the first, one object-set image per class)."""
    gen = generator or SceneGenerator()
    side = 336  # displayed scene side
    width = 4 * side + 3 * 4
    rows = [_title(width, f"Procedural scenes (train split, {gen.image_size}x{gen.image_size}, shown at {side})")]
    scenes = [gen.generate(i, "train") for i in _distinct_backgrounds(gen, 4)]
    panels = []
    for s in scenes:
        small = cv2.resize(s.image, (side, side), interpolation=cv2.INTER_AREA)
        panels.append(_caption(small, f"train #{s.scene_id}: {s.background}, {len(s.objects)} objects"))
    rows.append(_row(panels, width))

    base = scenes[0]
    chosen = [0, 1]
    variants = gen.colour_variants(base, 3)
    recoloured = gen.recolour(base, 1, chosen)
    rows.append(_title(width, f"Colour variants of train #{base.scene_id} (same layout and background)"))
    captions = ["variant 0 (original)", "variant 1 (all objects)", "variant 2 (all objects)"]
    captions.append(f"variant 1, objects {chosen} only")
    panels = []
    for s, text in zip([*variants, recoloured], captions):
        small = cv2.resize(s.image, (side, side), interpolation=cv2.INTER_AREA)
        panels.append(_caption(small, text))
    rows.append(_row(panels, width))

    rows.append(_title(width, "One object per class (object set, val split, random colour/size/pose/background)"))
    tile = (width - 5 * 4) // 6
    objects = [
        _caption(cv2.resize(sample_object(c, 0, "val", image_size=224).image, (tile, tile)), c) for c in OBJECT_CLASSES
    ]
    rows.append(_row(objects[:6], width))
    rows.append(np.full((4, width, 3), 255, dtype=np.uint8))
    rows.append(_row(objects[6:12], width))
    if len(objects) > 12:  # pragma: no cover - more classes than fit in two rows
        rows.append(_row(objects[12:18], width))
    return np.concatenate(rows, axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/scenes_examples.png"), help="PNG path")
    args = parser.parse_args(argv)
    sheet = make_contact_sheet()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"error: could not write {args.out}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
