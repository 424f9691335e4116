"""Progress reporting: a tqdm bar on a terminal, periodic log lines otherwise (CI logs, files)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

logger = logging.getLogger(__name__)


class Progress:
    """Progress over ``total`` units with rate and ETA.

    On a TTY this is a tqdm bar; when stderr is not a terminal it logs one line every ``log_every_s``
    seconds (``desc: 1200/5000 (24%) 85.1 it/s, ETA 0:00:44, loss=3.21``) so logs stay readable.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
        initial: int = 0,
        log_every_s: float = 10.0,
    ):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.n = initial
        self._start_n = initial
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._log_every_s = log_every_s
        self._postfix: dict[str, Any] = {}
        self._bar = None
        if not disable and sys.stderr.isatty():
            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        """Units per second since this object was created."""
        elapsed = time.perf_counter() - self._t0
        return (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` units; keyword arguments are shown after the rate (floats with 4 digits)."""
        self.n += n
        self._postfix.update(postfix)
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in self._postfix.items()}, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last_log >= self._log_every_s or (self.total is not None and self.n >= self.total):
            self._last_log = now
            logger.info(self.line())

    def line(self) -> str:
        """The current progress as one line of text."""
        rate = self.rate
        text = f"{self.desc}: {self.n}"
        if self.total:
            text += f"/{self.total} ({100 * self.n / self.total:.0f}%)"
        text += f" {rate:.1f} {self.unit}/s"
        if self.total and rate > 0:
            eta = int((self.total - self.n) / rate)
            text += f", ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
        if self._postfix:
            text += ", " + ", ".join(f"{k}={_fmt(v)}" for k, v in self._postfix.items())
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
