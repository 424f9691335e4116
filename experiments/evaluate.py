"""Evaluate a two-phase run's policy on held-out scenes: metrics table (JSON + text) and a PNG of trajectories.

    python -m experiments.evaluate runs/ImageNav-v0__demo__1__1712345678 --episodes 100 --split test
    python -m experiments.evaluate RUN_DIR --checkpoints phase1_end final --deterministic

Each checkpoint's policy runs with its own encoder (re-encoding the held-out scenes), next to the reference
policies (a random walk, a blind persistent walk, recognition + persistent walk), on the same episodes (same
environment seed). Reports success, SPL, soft-SPL, coverage, path length and return as mean ± 95% CI, and each
policy's success minus the blind walk's, paired by episode; writes ``<output>/<split>.json``, ``<split>.txt`` and
``<split>_trajectories.png`` (default output: ``RUN_DIR/eval``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import AT_LEAST_1, NON_NEGATIVE, check_fields, parse_config
from encoders.utils.logging import setup_logging


@dataclass
class EvaluateConfig:
    """Evaluate checkpoints of a two_phase run on held-out scenes."""

    run_dir: tyro.conf.Positional[Path]
    """a run folder written by experiments.two_phase"""
    episodes: Annotated[int, AT_LEAST_1] = 100
    """episodes per policy"""
    split: Literal["train", "val", "test"] = "test"
    """scene split (test and val scenes are never trained on)"""
    checkpoints: tuple[str, ...] = ("final",)
    """checkpoint names (folders in RUN_DIR/checkpoints, or 'latest')"""
    n_scenes: Annotated[int, AT_LEAST_1] | None = None
    """number of scenes of the split (default: the run's n_eval_scenes, n_train_scenes for train)"""
    n_envs: Annotated[int, AT_LEAST_1] | None = None
    """parallel agents (default: the run's n_envs, at most --episodes)"""
    seed: Annotated[int, NON_NEGATIVE] | None = None
    """environment seed (default: the run's seed + 10000; same episodes for every policy)"""
    deterministic: bool = False
    """act greedily instead of sampling (a memoryless policy may then loop)"""
    baseline: bool = True
    """also evaluate a uniform random walk"""
    references: bool = True
    """also evaluate the blind persistent walk and recognition + persistent walk (they read the agent's cell and
    heading from the environment) and report each policy's success minus the blind walk's, paired by episode"""
    device: str = "cpu"
    """device of the encoder"""
    output: Path | None = None
    """output folder (default: RUN_DIR/eval)"""


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EvaluateConfig, argv, description=__doc__.split("\n\n")[0])
    setup_logging()
    from techniques.rl_navigation.evaluation import evaluate_run, format_table, write_report

    try:
        check_fields(cfg)
        results = evaluate_run(
            cfg.run_dir,
            cfg.checkpoints,
            split=cfg.split,
            episodes=cfg.episodes,
            n_scenes=cfg.n_scenes,
            n_envs=cfg.n_envs,
            seed=cfg.seed,
            deterministic=cfg.deterministic,
            random_baseline=cfg.baseline,
            device=cfg.device,
            references=cfg.references,
        )
    except CLI_ERRORS as e:
        return report_error(e)
    meta = {
        "run_dir": str(cfg.run_dir),
        "split": cfg.split,
        "episodes": cfg.episodes,
        "checkpoints": list(cfg.checkpoints),
        "deterministic": cfg.deterministic,
        "seed": cfg.seed,
    }
    summaries, paired, paths = write_report(results, cfg.output or (cfg.run_dir / "eval"), cfg.split, meta)
    print(f"evaluation of {cfg.run_dir} on {cfg.episodes} {cfg.split} episodes per policy (mean ± 95% CI)")
    print(format_table(summaries, paired=paired))
    print(f"  wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
