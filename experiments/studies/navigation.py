"""Study 2, navigation on held-out scenes: random walk, extrinsic-only PPO, PPO + semantic curiosity (phase 1
only), the full two-phase method, PPO + pixel-space curiosity, and the field's baselines (ICM, a random-init
encoder, RND, a goal-distance dense reward, pure curiosity, an LSTM policy) on ``ObjectNav-v0`` (the goal object
is shown in another colour) and ``ImageNav-v0``.

    python -m experiments.studies.navigation --budget cpu --out runs/studies/navigation
    python -m experiments.studies.navigation --budget cpu --rl.phase1-steps 2000000 --rl.phase2-steps 1000000 \\
        --rl.device cuda   # longer, on a GPU

Every arm trains the same number of environment steps (``--rl.phase1-steps + --rl.phase2-steps``); the two-phase arm
spends the last ``--rl.phase2-steps`` of them fine-tuning the encoder's top blocks. Each arm is a normal
``experiments.two_phase`` run folder (``<out>/runs/<task>/<arm>__seed<k>``) whose final evaluation on the test
split (``--rl.eval-episodes`` episodes, same episodes for every policy of a seed) gives the per-seed success,
SPL and coverage; the random walk is evaluated in the extrinsic-only run. Tables report, over seeds (a seed's
score is its mean over its evaluation episodes), the mean with its 95% t-interval, the interquartile mean with its
stratified-bootstrap 95% interval, and the probability that the row improves on the row it is compared with
(rliable; Agarwal et al. 2021); learning curves are the training episodes' success rate and coverage.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.studies.config import SMOKE_RL, RLStudyConfig, arm_run, start_rl_study, step_budget
from experiments.studies.curves import binned_curves, curve_by_steps
from experiments.studies.figures import bar_chart, new_figure, plot_band, save_figure
from experiments.studies.launch import launch
from experiments.studies.outputs import markdown_table, write_outputs
from experiments.studies.two_phase_runs import TwoPhaseRun, eval_summary, run_seconds
from techniques.rl_navigation.reference_policies import BLIND_WALK, RECOGNITION_WALK
from techniques.rl_navigation.statistics import fmt_ci, fmt_interval, iqm_ci, mean_ci, probability_of_improvement

logger = logging.getLogger("experiments.studies.navigation")

METRICS = ("success", "spl", "coverage")

#: (arm, ``TwoPhaseConfig`` fields, has phase 2). Rows of the table come from the arms' evaluations, see ``ROWS``.
ARMS: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("ppo", {"curiosity.space": "none", "intrinsic_coef": 0.0}, False),
    ("semantic_p1", {"curiosity.space": "semantic"}, False),
    ("two_phase", {"curiosity.space": "semantic", "curiosity.target_mode": "ema"}, True),
    ("pixels", {"curiosity.space": "pixels"}, False),
    ("inverse", {"curiosity.space": "inverse"}, False),
    ("random", {"curiosity.space": "random"}, False),
    ("rnd", {"curiosity.space": "rnd"}, False),
    ("goal_distance", {"curiosity.space": "none", "intrinsic_coef": 0.0, "goal_distance_reward": 1.0}, False),
    ("pure_curiosity", {"curiosity.space": "semantic", "extrinsic_coef": 0.0}, False),
    ("lstm", {"curiosity.space": "semantic", "policy": "lstm"}, False),
)

#: Table rows: (label, arm, evaluated policy label in the arm's summary_test.json).
ROWS: tuple[tuple[str, str, str], ...] = (
    ("random walk", "ppo", "random walk"),
    (BLIND_WALK, "ppo", BLIND_WALK),
    (RECOGNITION_WALK, "ppo", RECOGNITION_WALK),
    ("PPO, extrinsic only", "ppo", "final"),
    ("PPO + semantic curiosity (phase 1 only)", "semantic_p1", "final"),
    ("full two-phase (phase-1 end)", "two_phase", "phase-1 end"),
    ("full two-phase", "two_phase", "phase-2 end"),
    ("PPO + pixel curiosity", "pixels", "final"),
    ("PPO + ICM (inverse-dynamics features)", "inverse", "final"),
    ("PPO + random-encoder curiosity", "random", "final"),
    ("PPO + RND", "rnd", "final"),
    ("PPO + goal-distance reward", "goal_distance", "final"),
    ("pure curiosity (no extrinsic advantage)", "pure_curiosity", "final"),
    ("LSTM PPO + semantic curiosity", "lstm", "final"),
)

SEMANTIC = "PPO + semantic curiosity (phase 1 only)"
EXTRINSIC = "PPO, extrinsic only"
#: The rows each row is compared with, in order of preference (the first one present is used): the probability of
#: improvement on success and the paired difference over seeds. The other curiosity spaces are compared with the
#: semantic one (the car-colour question), phase 2 with its own phase-1 end, the LSTM with the MLP policy of the same
#: curiosity, the rest with extrinsic PPO; extrinsic PPO with the blind persistent walk (the headline: a memoryless
#: policy that does not beat it has learned nothing from its features).
REFERENCE: dict[str, tuple[str, ...]] = {
    BLIND_WALK: ("random walk",),
    RECOGNITION_WALK: (BLIND_WALK,),
    EXTRINSIC: (BLIND_WALK, "random walk"),
    SEMANTIC: (EXTRINSIC,),
    "full two-phase (phase-1 end)": (SEMANTIC, EXTRINSIC),
    "full two-phase": ("full two-phase (phase-1 end)",),
    "PPO + pixel curiosity": (SEMANTIC, EXTRINSIC),
    "PPO + ICM (inverse-dynamics features)": (SEMANTIC, EXTRINSIC),
    "PPO + random-encoder curiosity": (SEMANTIC, EXTRINSIC),
    "PPO + RND": (SEMANTIC, EXTRINSIC),
    "PPO + goal-distance reward": (EXTRINSIC,),
    "pure curiosity (no extrinsic advantage)": (SEMANTIC, EXTRINSIC),
    "LSTM PPO + semantic curiosity": (SEMANTIC, EXTRINSIC),
}


@dataclass
class NavigationConfig(RLStudyConfig):
    """Navigation baselines and ablations on held-out scenes, several seeds."""

    out: Path = Path("runs/studies/navigation")
    """output folder"""
    tasks: tuple[str, ...] = ("ObjectNav-v0", "ImageNav-v0")
    """tasks (registered environment ids)"""
    arms: tuple[str, ...] = tuple(a for a, _, _ in ARMS)
    """arms to run (ppo, semantic_p1, two_phase, pixels, inverse, random, rnd, goal_distance, pure_curiosity, lstm)"""


BUDGETS = {
    "smoke": {"seeds": 2, "tasks": ("ImageNav-v0",), "arms": ("ppo", "two_phase", "rnd"), **SMOKE_RL},
    "cpu": {},
}


def arm_fields(cfg: NavigationConfig, arm: str) -> dict[str, Any]:
    """``TwoPhaseConfig`` fields of ``arm`` (curiosity settings and the step split)."""
    fields, phase2 = next((f, p) for a, f, p in ARMS if a == arm)
    return {**fields, **step_budget(cfg.rl, phase2)}


def collect(runs: dict[str, dict[str, dict[int, Path]]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Per-seed test metrics ``{task: {row: {seed: {metric: value}}}}`` from the runs' evaluations, and
    ``train_success``: the same policy's success on its training scenes (NaN when the run did not evaluate there)."""
    raw: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for task, arms in runs.items():
        for label, arm, policy in ROWS:
            for seed, run_dir in arms.get(arm, {}).items():
                summary = eval_summary(run_dir)
                if policy not in summary:
                    continue
                values = {m: summary[policy][m]["mean"] for m in (*METRICS, "soft_spl")}
                train = run_dir / "eval" / "summary_train.json"
                values["train_success"] = (
                    eval_summary(run_dir, "train")[policy]["success"]["mean"] if train.exists() else float("nan")
                )
                raw.setdefault(task, {}).setdefault(label, {})[str(seed)] = values
    return raw


def _scores(seeds: dict[str, dict[str, float]], metric: str) -> np.ndarray:
    """``(seeds, 1)`` scores of one row and task, in seed order."""
    return np.asarray([[seeds[k][metric]] for k in sorted(seeds, key=int)], dtype=np.float64)


def summarize(raw: dict[str, dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{task: {row: {metric: mean_ci over seeds, "<metric>_iqm": iqm_ci, "improvement": P(row > reference),
    "<metric>_diff": mean_ci of the paired per-seed differences row - reference}}}`` (the reference: the first row
    of :data:`REFERENCE` present; the probability of improvement on success; differences over the shared seeds)."""
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for task, rows in raw.items():
        out[task] = {}
        for row, seeds in rows.items():
            s: dict[str, dict] = {
                m: mean_ci([v.get(m, float("nan")) for v in seeds.values()])
                for m in (*METRICS, "soft_spl", "train_success")
            }
            for m in ("success", "spl"):
                s[f"{m}_iqm"] = iqm_ci(_scores(seeds, m))
            ref = next((r for r in REFERENCE.get(row, ()) if r in rows), None)
            if ref is not None:
                p = probability_of_improvement(_scores(seeds, "success"), _scores(rows[ref], "success"))
                s["improvement"] = {**p, "over": ref}
                shared = sorted(set(seeds) & set(rows[ref]), key=int)
                for m in ("success", "spl"):
                    s[f"{m}_diff"] = mean_ci([seeds[k][m] - rows[ref][k][m] for k in shared])
            out[task][row] = s
    return out


def table(summary: dict[str, dict[str, dict[str, dict]]], episodes: int) -> str:
    """One markdown table per task."""
    parts = []
    header = ["policy", "seeds", "success", "success IQM", "train success", "SPL", "SPL IQM", "coverage"]
    header += ["P(success > ref)", "success - ref (paired)", "SPL - ref (paired)", "ref"]
    for task, rows in summary.items():
        body = []
        for row, s in rows.items():
            iqm = {
                m: fmt_interval(s[f"{m}_iqm"]["iqm"], s[f"{m}_iqm"]["low"], s[f"{m}_iqm"]["high"])
                for m in ("success", "spl")
            }
            imp = s.get("improvement")
            p = fmt_interval(imp["p"], imp["low"], imp["high"], 2) if imp else ""
            cells = [fmt_ci(s["success"]), iqm["success"], fmt_ci(s["train_success"]), fmt_ci(s["spl"]), iqm["spl"]]
            cells += [fmt_ci(s["coverage"]), p]
            cells += [fmt_ci(s[f"{m}_diff"]) if imp else "" for m in ("success", "spl")]
            body.append([row, str(s["success"]["n"]), *cells, imp["over"] if imp else ""])
        parts.append(
            f"**{task}** (test split, {episodes} episodes per policy and seed; train success: the same policy on its "
            "training scenes; mean ± 95% t-interval over seeds; "
            "IQM [stratified-bootstrap 95% interval]; probability of improvement over the reference row and the "
            "paired difference from it, same seeds and test episodes)\n\n" + markdown_table(header, body)
        )
    return "\n\n".join(parts)


def curves_figure(cfg: NavigationConfig, runs: dict[str, dict[str, dict[int, Path]]], path: Path) -> Path:
    """Training success rate and coverage against environment steps: one row of panels per task, a band per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, cfg.rl.phase1_steps + cfg.rl.phase2_steps, 11)
    labels = {
        "ppo": "PPO extrinsic",
        "semantic_p1": "+ semantic cur.",
        "two_phase": "two-phase",
        "pixels": "+ pixel cur.",
        "inverse": "+ ICM",
        "random": "+ random-enc. cur.",
        "rnd": "+ RND",
        "goal_distance": "+ goal-distance",
        "pure_curiosity": "pure curiosity",
        "lstm": "LSTM + semantic cur.",
    }
    fig, axes = plt.subplots(len(runs), 2, figsize=(9, 3.0 * len(runs)), squeeze=False)
    for r, (task, arms) in enumerate(runs.items()):
        for c, (tag, name) in enumerate((("charts/success_rate", "success rate"), ("charts/coverage", "coverage"))):
            ax = axes[r][c]
            for arm, seeds in arms.items():
                curves = [curve_by_steps(d, tag) for d in seeds.values()]
                x, mean, half = binned_curves(curves, grid)
                plot_band(ax, x, mean, half, labels.get(arm, arm))
            if cfg.rl.phase2_steps:
                ax.axvline(cfg.rl.phase1_steps, color="grey", ls=":", lw=1)
            ax.set_title(f"{task}: training {name}", fontsize=9)
            ax.set_xlabel("environment steps")
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def heldout_figure(summary: dict[str, dict[str, dict[str, dict]]], path: Path) -> Path:
    """Held-out success and coverage per policy and task (95% intervals over seeds)."""
    fig, axes = new_figure(2, width=5.0, height=3.6)
    tasks = list(summary)
    rows = list(next(iter(summary.values())))
    short = {r: r.replace("PPO + ", "+ ").replace(" (phase 1 only)", " (p1)") for r in rows}
    for ax, metric in zip(axes, ("success", "coverage")):
        series = {t: [summary[t][r][metric] for r in rows if r in summary[t]] for t in tasks}
        bar_chart(ax, [short[r] for r in rows], series, f"test {metric}")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    names = [a for a, _, _ in ARMS]
    cfg, weights, t0 = start_rl_study(NavigationConfig, argv, BUDGETS, __doc__.split("\n\n")[0], arms=names)
    t_runs = time.perf_counter()
    subruns: list[TwoPhaseRun] = []
    runs: dict[str, dict[str, dict[int, Path]]] = {}
    for seed in range(1, cfg.seeds + 1):  # seed-major: a partial sweep still has every arm
        for task in cfg.tasks:
            for arm in cfg.arms:
                subruns.append(arm_run(cfg, task, arm, arm_fields(cfg, arm), seed))
                runs.setdefault(task, {}).setdefault(arm, {})[seed] = subruns[-1].run_dir
    launch(subruns, cfg, cfg.out)
    raw = collect(runs)
    summary = summarize(raw)
    seconds = {
        task: {arm: [run_seconds(d) for d in seeds.values()] for arm, seeds in arms.items()}
        for task, arms in runs.items()
    }
    wall = time.perf_counter() - t0
    notes = [
        f"encoder: {cfg.rl.encoder} ({weights or 'random init'}); every arm trains "
        f"{cfg.rl.phase1_steps + cfg.rl.phase2_steps} environment steps (two-phase: {cfg.rl.phase1_steps} + "
        f"{cfg.rl.phase2_steps}); {cfg.seeds} seeds; mean ± 95% t-interval, IQM and probability of improvement "
        "(rliable, stratified bootstrap) over seeds",
        f"sub-runs: {time.perf_counter() - t_runs:.0f} s in all (per run: "
        + ", ".join(f"{a} {np.nanmean(s):.0f} s" for a, s in next(iter(seconds.values())).items())
        + ")",
    ]
    text = table(summary, cfg.rl.eval_episodes)
    results = {"summary": summary, "run_seconds": seconds, "runs": _paths(runs)}
    write_outputs(cfg.out, cfg, raw, results, text, wall, notes)
    curves_figure(cfg, runs, cfg.out / "navigation_curves.png")
    heldout_figure(summary, cfg.out / "navigation_test.png")
    print(text)
    print(f"navigation: {wall:.0f} s -> {cfg.out}")
    return 0


def _paths(runs: dict[str, dict[str, dict[int, Path]]]) -> dict[str, dict[str, dict[str, str]]]:
    return {t: {a: {str(s): str(d) for s, d in seeds.items()} for a, seeds in arms.items()} for t, arms in runs.items()}


__all__ = ["ARMS", "BUDGETS", "ROWS", "NavigationConfig", "collect", "main", "summarize"]

if __name__ == "__main__":
    sys.exit(main())
