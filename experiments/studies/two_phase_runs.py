"""``experiments.two_phase`` run folders as study sub-runs, built from the config API (a
:class:`~techniques.rl_navigation.config.TwoPhaseConfig`, never an argv string), and the readers of their results.

A sub-run folder holds the two_phase run itself (``config.json``, ``checkpoints/``, ``eval/``, TensorBoard events)
and two study files: ``study_config.json`` (the sub-run's config, written before it starts) and
``study_time.json`` (its wall time, written when it has finished). With the same config, a finished folder is
reused, an interrupted one resumed from its newest checkpoint (an interrupted pretraining of the demo preset from
its own checkpoint); a folder of another config is replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoders.utils.config import config_to_dict, replace_nested
from experiments.studies.outputs import save_json
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig

logger = logging.getLogger("experiments.studies.two_phase_runs")

CONFIG_FILE = "study_config.json"
TIME_FILE = "study_time.json"


def two_phase_config(preset: str, overrides: Mapping[str, Any]) -> TwoPhaseConfig:
    """``TwoPhaseConfig`` of a preset with ``overrides`` (dotted keys for nested fields, ``{"ppo.n_steps": 64}``)
    applied over it: what ``two_phase --preset PRESET --flag value ...`` parses to."""
    if preset not in PRESETS:
        raise ValueError(f"unknown two_phase preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    return replace_nested(replace_nested(TwoPhaseConfig(), PRESETS[preset]), overrides)


@dataclass
class TwoPhaseRun:
    """One ``experiments.two_phase`` run into ``cfg.run_dir`` (set), reused, resumed or replaced (module doc)."""

    cfg: TwoPhaseConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir or "")  # never empty: checked by the constructor

    def __post_init__(self) -> None:
        if self.cfg.run_dir is None:
            raise ValueError("a study sub-run needs its run folder: set TwoPhaseConfig.run_dir")
        if self.cfg.resume is not None:
            raise ValueError("a study sub-run resumes by itself: leave TwoPhaseConfig.resume unset")

    def check(self) -> None:
        from techniques.rl_navigation.config import check_config

        check_config(self.cfg)

    def _same_config(self) -> bool:
        path = self.run_dir / CONFIG_FILE
        return path.exists() and json.loads(path.read_text()) == json.loads(json.dumps(config_to_dict(self.cfg)))

    def trained(self) -> bool:
        """Whether the folder holds this run, finished (trained and evaluated)."""
        return (self.run_dir / TIME_FILE).exists() and self._same_config()

    def done(self) -> bool:
        return self.trained()

    def __call__(self) -> None:
        from experiments import two_phase
        from techniques.rl_navigation.checkpointing import list_checkpoints

        if self.trained():
            logger.info("reusing finished run %s", self.run_dir)
            return
        cfg, run_dir = self.cfg, self.run_dir
        if not self._same_config():  # another config, or a folder the study did not start: replace it
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            save_json(config_to_dict(cfg), run_dir / CONFIG_FILE)
        elif list_checkpoints(run_dir):
            logger.info("resuming interrupted run %s", run_dir)
            cfg = replace_nested(cfg, {"resume": run_dir})
        else:  # stopped before its first checkpoint: start again, keeping a demo pretraining's own checkpoint
            for path in run_dir.iterdir():
                if path.name not in (CONFIG_FILE, "pretrain"):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        t0 = time.perf_counter()
        with torch_threads(cfg.torch_threads):  # the evaluation too: the same arithmetic in any process
            rc = two_phase.run(cfg, [], {"now": "setup", "run_dir": None})
        if rc != 0:
            raise RuntimeError(f"experiments.two_phase into {run_dir} stopped with exit code {rc}; rerun to resume it")
        save_json({"seconds": round(time.perf_counter() - t0, 1)}, run_dir / TIME_FILE)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside the block (the sub-run's ``torch_threads``), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_seconds(run_dir: Path) -> float:
    """Wall seconds of a sub-run (training + evaluation; of its last part when it was resumed)."""
    path = run_dir / TIME_FILE
    return float(json.loads(path.read_text())["seconds"]) if path.exists() else float("nan")


def eval_report(run_dir: Path, split: str = "test") -> dict[str, Any]:
    """The whole ``eval/summary_<split>.json`` of a run: ``"results"``, ``"success_minus_blind_walk"``."""
    return json.loads((run_dir / "eval" / f"summary_{split}.json").read_text())


def eval_summary(run_dir: Path, split: str = "test") -> dict[str, dict[str, dict[str, float]]]:
    """The final held-out evaluation of a run: ``{policy label: {metric: {"mean", "ci95", "n"}}}``."""
    return eval_report(run_dir, split)["results"]


__all__ = ["TwoPhaseRun", "eval_report", "eval_summary", "run_seconds", "torch_threads", "two_phase_config"]
