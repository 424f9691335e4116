"""Write procedural scenes as PNG files plus annotations (e.g. a pretraining set for ``experiments.pretrain``).

    python -m envs.scenes.export --out data/scenes --n 500
    python -m envs.scenes.export --out data/scenes_val --n 100 --split val --size 224 --seed 0

Writes ``OUT/<split>_<scene_id:06d>.png`` for scene ids ``start .. start+n-1``, ``OUT/annotations.jsonl`` (one JSON
line per scene: file, scene_id, split, background, height, width, objects with class_name, class_id, bbox
``[x0, y0, x1, y1]`` (exclusive ends), center, colour, angle, size) and ``OUT/config.json`` (the resolved options).
The same options always give the same bytes.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2

from envs.scenes.generator import SceneGenerator
from envs.scenes.types import BACKGROUNDS, OBJECT_CLASSES, Scene

logger = logging.getLogger(__name__)


def scene_filename(scene: Scene) -> str:
    """``<split>_<scene_id:06d>.png``."""
    return f"{scene.split}_{scene.scene_id:06d}.png"


def export_scenes(
    generator: SceneGenerator,
    out: str | Path,
    n: int,
    split: str = "train",
    start: int = 0,
    png_compression: int = 1,
    progress: bool = True,
) -> Path:
    """Generate scenes ``start .. start+n-1`` of ``split`` into ``out`` (layout in the module docstring)."""
    from encoders.utils.io import atomic_write_text
    from encoders.utils.progress import Progress

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if not 0 <= png_compression <= 9:
        raise ValueError(f"png_compression must be in 0..9, got {png_compression}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    lines = []
    with Progress(n, desc=f"scenes ({split})", unit="scene", disable=not progress) as bar:
        for scene_id in range(start, start + n):
            scene = generator.generate(scene_id, split)
            name = scene_filename(scene)
            if not cv2.imwrite(str(out / name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), params):
                raise OSError(f"could not write {out / name}; check that the folder is writable")
            lines.append(json.dumps({"file": name, **scene.annotation()}))
            bar.update()
    atomic_write_text("\n".join(lines) + "\n", out / "annotations.jsonl")
    return out


@dataclass
class ExportConfig:
    """Write procedural scenes as PNG files plus annotations.jsonl."""

    out: Path | None = None
    """output folder (required)"""
    n: int = 500
    """number of scenes"""
    split: Literal["train", "val", "test"] = "train"
    """scene split (splits never share scenes)"""
    size: int = 448
    """scene side in pixels (a multiple of --patch-size)"""
    seed: int = 0
    """base seed of the generator"""
    start: int = 0
    """first scene id"""
    patch_size: int = 14
    """encoder patch size the scene side must be a multiple of"""
    n_objects: tuple[int, int] = (4, 8)
    """min and max objects per scene"""
    object_size: tuple[int, int] = (36, 72)
    """min and max object size in pixels"""
    classes: tuple[str, ...] = OBJECT_CLASSES
    """object classes"""
    backgrounds: tuple[str, ...] = BACKGROUNDS
    """background textures"""
    min_gap: int = 4
    """minimum gap between objects in pixels"""
    max_rotation: float = 15.0
    """maximum object rotation in degrees"""
    png_compression: int = 1
    """PNG compression level 0-9 (higher: smaller files, slower)"""


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.config import parse_config, save_config
    from encoders.utils.logging import setup_logging

    cfg = parse_config(ExportConfig, argv, description=__doc__.split("\n\n")[0])
    setup_logging()
    if cfg.out is None:
        print("error: pass --out DIR (the folder to write the scenes to)", file=sys.stderr)
        return 2
    try:
        generator = SceneGenerator(
            image_size=cfg.size,
            n_objects=cfg.n_objects,
            classes=cfg.classes,
            object_size=cfg.object_size,
            backgrounds=cfg.backgrounds,
            min_gap=cfg.min_gap,
            max_rotation=cfg.max_rotation,
            seed=cfg.seed,
            patch_size=cfg.patch_size,
        )
        out = export_scenes(generator, cfg.out, cfg.n, cfg.split, cfg.start, cfg.png_compression)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_config(cfg, out)
    last = cfg.start + cfg.n - 1
    print(f"wrote {cfg.n} {cfg.size}x{cfg.size} scenes ({cfg.split}, ids {cfg.start}..{last}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
