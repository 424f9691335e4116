"""A study's result files in its ``--out`` folder: ``config.json`` (the resolved study config), ``raw.json``
(per-seed numbers), ``results.json`` (summaries, wall time, notes) and ``table.md`` (the markdown table quoted in
the docs), all written atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table from a header and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON (atomically), NaN written as ``null``."""
    from encoders.utils.io import atomic_write_text

    return atomic_write_text(json.dumps(_nan_to_none(data), indent=2) + "\n", Path(path))


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def write_outputs(
    out: Path, cfg: Any, raw: Any, results: Mapping[str, Any], table: str, wall_s: float, notes: Sequence[str] = ()
) -> None:
    """``config.json``, ``raw.json``, ``results.json`` (with the wall time) and ``table.md`` in ``out``."""
    from encoders.utils.config import save_config
    from encoders.utils.io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    save_json(raw, out / "raw.json")
    save_json({**results, "wall_seconds": round(wall_s, 1), "notes": list(notes)}, out / "results.json")
    text = table + f"\n\nWall time: {wall_s / 60:.1f} min (budget `{cfg.budget}`).\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic_write_text(text, out / "table.md")


__all__ = ["markdown_table", "save_json", "write_outputs"]
