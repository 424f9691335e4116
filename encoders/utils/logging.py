"""One logging setup for every CLI (rank-aware: only rank 0 logs INFO in distributed runs)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str | int = "INFO", rank: int = 0) -> None:
    """Log ``HH:MM:SS level name: message`` to stderr; ranks other than 0 only log warnings."""
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank{rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if rank == 0 else max(logging.WARNING, level))
