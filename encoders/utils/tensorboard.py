"""TensorBoard writers: a real ``SummaryWriter`` on rank 0, a silent stand-in on other ranks."""

from __future__ import annotations

import os
from typing import Any


class NullWriter:
    """Accepts every ``SummaryWriter`` call and does nothing (non-zero ranks, disabled logging)."""

    def __getattr__(self, name: str) -> Any:
        def _noop(*args: Any, **kwargs: Any) -> None:
            return None

        return _noop


def make_writer(logdir: str | os.PathLike | None, rank: int = 0) -> Any:
    """``torch.utils.tensorboard.SummaryWriter(logdir)`` on rank 0 (``logdir`` not None), else a :class:`NullWriter`."""
    if logdir is None or rank != 0:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard import is slow

    return SummaryWriter(log_dir=str(logdir))
