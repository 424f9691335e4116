"""The demo over several seeds: ``experiments.two_phase --preset demo`` once per seed, and one table of the
held-out results aggregated over the seeds (the README's demo table comes from this command).

    python -m experiments.studies.demo_seeds --seeds 1 2 3 4 --out runs/demo_seeds     # ~4-7 min per seed, 2 CPUs
    python -m experiments.studies.demo_seeds --budget smoke --out /tmp/demo_seeds       # seconds (tests)

Every seed is a complete demo run (its own pretrained encoder, phase 1, phase 2 and the held-out evaluation of
the phase-1-end and phase-2-end policies and the reference policies on the same episodes) in ``<out>/runs/seed<k>``,
reused when it already finished with the same config (resumed when interrupted). A seed makes a run repeat exactly
only on the same machine with the same torch build (thread count and CPU kernels change float rounding, and RL
amplifies it), so
the table reports the mean over seeds with a 95% Student-t interval over the per-seed means, the per-seed
successes, each policy's success minus the blind persistent walk's (the headline: a memoryless policy that does not
beat it has learned nothing from its features), paired by seed, the seeds where it is above, and rliable's
interquartile mean of the per-seed successes (stratified-bootstrap 95% interval) with the probability that the
policy's success beats the blind walk's (Agarwal et al. 2021).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.studies.config import parse_study_config
from experiments.studies.launch import LaunchOptions, launch
from experiments.studies.outputs import markdown_table, write_outputs
from experiments.studies.two_phase_runs import TwoPhaseRun, eval_summary, run_seconds, two_phase_config
from techniques.rl_navigation.reference_policies import BLIND_WALK
from techniques.rl_navigation.statistics import fmt_ci, fmt_interval, iqm_ci, mean_ci, probability_of_improvement

logger = logging.getLogger("experiments.studies.demo_seeds")

METRICS = ("success", "spl", "soft_spl", "coverage")
BASELINE = BLIND_WALK


@dataclass
class DemoSeedsConfig(LaunchOptions):
    """The demo (``two_phase --preset demo``) once per seed, aggregated over the seeds."""

    out: Path = Path("runs/demo_seeds")
    """output folder (per-seed runs in <out>/runs/seed<k>)"""
    budget: str = "demo"
    """budget name (set by --budget: smoke | demo): the two_phase preset of every seed"""
    seeds: tuple[int, ...] = (1, 2, 3, 4)
    """the seeds (--seed of two_phase)"""
    device: str = "auto"
    """device of the encoder and forward model (auto, cpu, cuda)"""


BUDGETS: dict[str, dict] = {"smoke": {"seeds": (1, 2)}, "demo": {}}


def aggregate(per_seed: Mapping[int, Mapping[str, Mapping[str, Mapping[str, float]]]]) -> dict[str, dict]:
    """Per-seed eval summaries ``{seed: {policy: {metric: {"mean", ...}}}}`` -> ``{policy: {metric: mean_ci}}``
    over the seeds' means, plus ``success_minus_baseline`` (paired by seed), ``seeds_above_baseline`` and the
    probability of improvement over :data:`BASELINE` (the blind persistent walk) for every other policy."""
    policies = list(next(iter(per_seed.values())))
    out: dict[str, dict] = {}

    def successes(policy: str) -> list[float]:
        return [s[policy]["success"]["mean"] for s in per_seed.values()]

    for policy in policies:
        out[policy] = {m: mean_ci([s[policy][m]["mean"] for s in per_seed.values()]) for m in METRICS}
        out[policy]["success_iqm"] = iqm_ci(successes(policy))
        if policy != BASELINE and all(BASELINE in s for s in per_seed.values()):
            diffs = [s[policy]["success"]["mean"] - s[BASELINE]["success"]["mean"] for s in per_seed.values()]
            out[policy]["success_minus_baseline"] = mean_ci(diffs)
            out[policy]["seeds_above_baseline"] = sum(d > 0 for d in diffs)
            out[policy]["improvement"] = probability_of_improvement(successes(policy), successes(BASELINE))
    return out


def table(summary: Mapping[str, Mapping[str, Mapping[str, float]]], per_seed: Mapping[int, Mapping]) -> str:
    """The markdown table: one row per policy, mean ± 95% t-interval over seeds, and the per-seed successes."""
    seeds = list(per_seed)
    header = ["policy", "seeds", "success", "SPL", "soft-SPL", "coverage", "success − blind walk (paired)"]
    header += ["seeds above the blind walk", "success per seed", "success IQM", "P(success > blind walk)"]
    rows = []
    for policy, s in summary.items():
        per = ", ".join(f"{per_seed[k][policy]['success']['mean']:.3f}" for k in seeds)
        paired = "success_minus_baseline" in s
        diff = fmt_ci(s["success_minus_baseline"]) if paired else ""
        above = f"{s['seeds_above_baseline']} of {len(seeds)}" if paired else ""
        iqm, imp = s["success_iqm"], s.get("improvement")
        rliable = [fmt_interval(iqm["iqm"], iqm["low"], iqm["high"])]
        rliable.append(fmt_interval(imp["p"], imp["low"], imp["high"], 2) if imp else "")
        rows.append([policy, str(len(seeds)), *(fmt_ci(s[m]) for m in METRICS), diff, above, per, *rliable])
    return markdown_table(header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.logging import setup_logging

    cfg = parse_study_config(DemoSeedsConfig, argv, BUDGETS, __doc__.split("\n\n")[0], default_budget="demo")
    setup_logging()
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise SystemExit(f"error: --seeds must be distinct seeds, e.g. --seeds 1 2 3 4; got {list(cfg.seeds)}")
    t0 = time.perf_counter()
    fields = {"device": cfg.device}
    runs = {k: cfg.out / "runs" / f"seed{k}" for k in cfg.seeds}
    launch(
        [TwoPhaseRun(two_phase_config(cfg.budget, {**fields, "seed": k, "run_dir": d})) for k, d in runs.items()],
        cfg,
        cfg.out,
    )
    per_seed = {k: eval_summary(d) for k, d in runs.items()}
    seconds = {k: run_seconds(d) for k, d in runs.items()}
    summary = aggregate(per_seed)
    text = table(summary, per_seed)
    episodes = next(iter(next(iter(per_seed.values())).values()))["success"]["n"]
    notes = [
        f"two_phase --preset {cfg.budget}, seeds {', '.join(map(str, cfg.seeds))}; held-out test split, {episodes} "
        "episodes per policy and seed (the same episodes for every policy of a seed); mean ± 95% Student-t interval "
        "over the per-seed means",
        "per seed: " + ", ".join(f"{k}: {v / 60:.1f} min" for k, v in seconds.items()),
    ]
    wall = time.perf_counter() - t0
    write_outputs(cfg.out, cfg, per_seed, {"summary": summary, "run_seconds": seconds}, text, wall, notes)
    print(text)
    print("\n".join(notes))
    print(f"demo_seeds: {wall / 60:.1f} min -> {cfg.out}")
    return 0


__all__ = ["BUDGETS", "DemoSeedsConfig", "aggregate", "main", "table"]

if __name__ == "__main__":
    sys.exit(main())
