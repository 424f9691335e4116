"""Graceful stops: Ctrl-C (SIGINT) and SIGTERM ask a training loop to stop at its next safe point.

A signal only sets a flag (through ``request_stop``); the loop finishes the step it is in (an iteration, a rollout
and its updates), saves a checkpoint there and returns, so a resumed run continues exactly. A second Ctrl-C aborts
at once with ``KeyboardInterrupt`` (nothing is saved; a resume then starts from the last checkpoint).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[], None], when: str) -> Iterator[None]:
    """While active, SIGINT and SIGTERM call ``request_stop()`` and log that the loop stops ``when`` (e.g. "after
    this iteration"); a second SIGINT raises ``KeyboardInterrupt``. The previous handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing; an ignored signal stays
    ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal asked
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: aborted without saving")
        asked = True
        logger.warning(
            "received %s: stopping %s and saving a checkpoint there (Ctrl-C again aborts without saving)",
            signal.Signals(signum).name,
            when,
        )
        request_stop()

    # a signal ignored by whoever started us (SIGINT of a background job of a script) stays ignored, as Python does
    watched = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in watched}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


__all__ = ["stop_on_signals"]
