"""Evaluation results: one row per encoder (k-NN and linear-probe accuracy), a markdown table and a JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoders.utils.io import atomic_write_text


@dataclass
class EncoderScores:
    """Accuracies (fractions in ``[0, 1]``; ``None`` when not measured) of one encoder on one dataset."""

    encoder: str
    """row label, e.g. ``vit_tiny_patch14 (runs/pretrain/backbone.pth)`` or ``raw pixels 16x16``"""
    knn_top1: float | None = None
    knn_top5: float | None = None
    linear_top1: float | None = None
    linear_top5: float | None = None
    linear_pooling: str | None = None
    """probe input: ``cls`` or ``cls+avgpool``"""
    linear_best_lr: float | None = None
    linear_sweep: dict[str, float] = field(default_factory=dict)
    """hold-out top-1 per learning rate (keys are the rates as strings, for JSON)"""
    feature_dim: int | None = None
    background_knn_top1: float | None = None
    """k-NN top-1 on the *background* label of each image (a nuisance: lower means the features ignore it more);
    measured on object sets whose ``labels.jsonl`` records backgrounds"""
    extra: dict[str, Any] = field(default_factory=dict)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def format_table(rows: Sequence[EncoderScores]) -> str:
    """A markdown table ``encoder | k-NN top-1 | linear top-1`` (percentages, one decimal), plus a
    ``background k-NN top-1`` column when any row measured it."""
    background = any(r.background_knn_top1 is not None for r in rows)
    lines = ["| encoder | k-NN top-1 | linear top-1 |" + " background k-NN top-1 |" * background]
    lines.append("|---|---:|---:|" + "---:|" * background)
    for r in rows:
        label = f"{r.encoder} [cls+avgpool]" if r.linear_pooling == "cls+avgpool" else r.encoder
        cells = [label, _pct(r.knn_top1), _pct(r.linear_top1)] + [_pct(r.background_knn_top1)] * background
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: Sequence[EncoderScores], path: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"meta": meta, "results": [row, ...]}`` as indented JSON (atomically)."""
    payload = {"meta": dict(meta or {}), "results": [dataclasses.asdict(r) for r in rows]}
    return atomic_write_text(json.dumps(payload, indent=2, default=str) + "\n", Path(path))


def read_report(path: str | os.PathLike) -> tuple[list[EncoderScores], dict[str, Any]]:
    """Inverse of :func:`write_report`: ``(rows, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation report at {path}; run python -m experiments.eval_encoder first")
    data = json.loads(path.read_text())
    return [EncoderScores(**row) for row in data["results"]], data.get("meta", {})


__all__ = ["EncoderScores", "format_table", "read_report", "write_report"]
