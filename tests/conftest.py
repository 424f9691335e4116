"""Shared test fixtures: the vendored DINOv2 reference outputs, deterministic torch settings, the signal dispositions
the tests expect, a PNG folder and the root logger put back after CLIs."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "dinov2"
FULL_WIDTH_FILES = ("vits14_depth2_weights.pt", "vits14_depth2_io.pt")


@pytest.fixture(scope="session")
def dinov2_fixtures() -> Path:
    """Folder of the vendored official DINOv2 reference outputs (``tests/fixtures/dinov2``, see its README)."""
    return FIXTURES


@pytest.fixture(scope="session")
def full_width_fixtures() -> Path:
    """Folder named by ``SEMNAV_FIXTURES`` holding the optional 25 MB full-width ViT-S/14 pair; skips without it."""
    folder = os.environ.get("SEMNAV_FIXTURES")
    if not folder:
        pytest.skip(
            "optional full-width ViT-S/14 fixtures: set SEMNAV_FIXTURES to the folder holding " + FULL_WIDTH_FILES[0]
        )
    missing = [name for name in FULL_WIDTH_FILES if not (Path(folder) / name).exists()]
    if missing:
        pytest.fail(f"SEMNAV_FIXTURES={folder} lacks {missing}; point it at the folder that holds them or unset it")
    return Path(folder)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _default_signal_dispositions():
    """Every test starts with Python's default SIGINT and SIGTERM handlers, however pytest was started.

    Under ``nohup`` or as a background job of a script (``bash -c 'trap "" INT; python -m pytest'``) SIGINT arrives
    ignored, and the trainer rightly leaves an ignored signal ignored; the tests that send Ctrl-C need it delivered.
    The dispositions found are put back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():  # signal.signal works in the main thread only
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """16 PNGs of random sizes with random filled shapes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(16):
        h, w = (int(v) for v in rng.integers(60, 140, size=2))
        img = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        for _ in range(3):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(img, center, int(rng.integers(5, 30)), color, -1)
        cv2.imwrite(str(root / f"img_{i:02d}.png"), img)
    return root


@pytest.fixture
def restore_logging():
    """Put the root logger's handlers and level back after a CLI configured logging for itself."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
