"""Study 4, phase-2 health: does fine-tuning the encoder through the forward-model loss collapse its features, and
does the EMA target prevent it? The collapse ablation: EMA target vs online target.

    python -m experiments.studies.phase2_health --budget cpu --out runs/studies/phase2_health

Two-phase runs on ``ImageNav-v0`` with ``--curiosity.target-mode ema`` (stop-gradient EMA of the top blocks) and
``online`` (the fine-tuned encoder itself under stop-gradient). Through phase 2 the trainer logs the encoder's
feature std and effective rank on the training scenes' feature cache (TensorBoard ``encoder/*``; the phase-1
value is logged at step 0). Reported per seed: both statistics at the end of phase 2 and at their lowest, as
fractions of the phase-1 value, the forward loss at the end, and held-out success / SPL of the phase-1-end and
phase-2-end policies (the downstream effect). Mean and 95% t-interval over seeds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.studies.config import SMOKE_RL, RLStudyConfig, arm_run, start_rl_study, step_budget, study_rl
from experiments.studies.curves import binned_curves, curve_by_steps, read_scalars
from experiments.studies.figures import new_figure, plot_band, save_figure
from experiments.studies.launch import launch
from experiments.studies.outputs import markdown_table, write_outputs
from experiments.studies.two_phase_runs import eval_summary, run_seconds
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.statistics import fmt_ci, mean_ci

logger = logging.getLogger("experiments.studies.phase2_health")

TARGETS = ("ema", "online")
STATS = ("feature_std", "effective_rank")
METRICS = (
    "feature_std_end",
    "feature_std_min",
    "effective_rank_end",
    "effective_rank_min",
    "forward_loss_end",
    "success_phase1",
    "success_phase2",
    "success_change",
    "spl_phase1",
    "spl_phase2",
)


@dataclass
class Phase2HealthConfig(RLStudyConfig):
    """Encoder health through phase 2 (feature std, effective rank, downstream success), EMA vs online target."""

    out: Path = Path("runs/studies/phase2_health")
    """output folder"""
    task: str = "ImageNav-v0"
    """task"""
    targets: tuple[str, ...] = TARGETS
    """phase-2 target modes compared (ema, online, frozen)"""
    rl: TwoPhaseConfig = field(default_factory=lambda: study_rl(phase1_steps=100_000, phase2_steps=200_000))


BUDGETS = {"smoke": {"seeds": 2, **SMOKE_RL}, "cpu": {}}


def encoder_curves(run_dir: Path, phase1_steps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{stat: (environment steps, value / phase-1 value)}`` through phase 2, starting at the phase switch with 1.0."""
    out = {}
    for stat in STATS:
        scalars = read_scalars(run_dir, [f"encoder/{stat}"])
        if f"encoder/{stat}" not in scalars:
            continue
        steps, values = scalars[f"encoder/{stat}"]
        ref = float(values[steps == 0][0]) if (steps == 0).any() else float(values[0])
        x, y = curve_by_steps(run_dir, f"encoder/{stat}")
        out[stat] = (np.concatenate([[phase1_steps], x]), np.concatenate([[1.0], y / ref]))
    return out


def seed_metrics(run_dir: Path, phase1_steps: int) -> dict[str, float]:
    """The per-seed numbers of one run (see the module docstring)."""
    curves = encoder_curves(run_dir, phase1_steps)
    out: dict[str, float] = {}
    for stat in STATS:
        _, y = curves.get(stat, (np.zeros(0), np.asarray([np.nan])))
        out[f"{stat}_end"], out[f"{stat}_min"] = float(y[-1]), float(np.min(y))
    loss = read_scalars(run_dir, ["losses/forward"]).get("losses/forward")
    out["forward_loss_end"] = float(loss[1][-1]) if loss is not None and len(loss[1]) else float("nan")
    summary = eval_summary(run_dir)
    for key, label in (("phase1", "phase-1 end"), ("phase2", "phase-2 end")):
        out[f"success_{key}"] = summary[label]["success"]["mean"]
        out[f"spl_{key}"] = summary[label]["spl"]["mean"]
    out["success_change"] = out["success_phase2"] - out["success_phase1"]
    return out


def table(summary: dict[str, dict[str, dict]], episodes: int) -> str:
    """Markdown table: one row per target mode."""
    header = [
        "phase-2 target",
        "seeds",
        "feature std, end / phase 1",
        "feature std, min / phase 1",
        "eff. rank, end / phase 1",
        "eff. rank, min / phase 1",
        "forward loss, end",
        f"test success, phase-1 end ({episodes} ep.)",
        "test success, phase-2 end",
        "success change",
    ]
    order = METRICS[:8]
    rows = [[t, str(s["feature_std_end"]["n"]), *(fmt_ci(s[m]) for m in order)] for t, s in summary.items()]
    return markdown_table(header, rows)


def figure(cfg: Phase2HealthConfig, runs: dict[str, dict[int, Path]], path: Path) -> Path:
    """Feature std and effective rank (relative to phase 1) and training success through phase 2."""
    fig, axes = new_figure(3, width=3.6, height=3.0)
    p1, total = cfg.rl.phase1_steps, cfg.rl.phase1_steps + cfg.rl.phase2_steps
    grid2 = np.linspace(p1, total, 9)
    grid2[0] -= 1e-6
    for target, seeds in runs.items():
        curves = [encoder_curves(d, p1) for d in seeds.values()]
        for ax, stat in zip(axes[:2], STATS):
            per_seed = [c[stat] for c in curves if stat in c]
            x, mean, half = binned_curves(per_seed, grid2)
            plot_band(ax, x, mean, half, target)
        succ = [curve_by_steps(d, "charts/success_rate") for d in seeds.values()]
        x, mean, half = binned_curves(succ, np.linspace(0, total, 11))
        plot_band(axes[2], x, mean, half, target)
    for ax, title in zip(axes, ("feature std / phase-1 value", "effective rank / phase-1 value", "training success")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.legend(fontsize=7, title="target", title_fontsize=7)
    axes[2].axvline(p1, color="grey", ls=":", lw=1)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, weights, t0 = start_rl_study(Phase2HealthConfig, argv, BUDGETS, __doc__.split("\n\n")[0])
    runs: dict[str, dict[int, Path]] = {}
    subruns = []
    for seed in range(1, cfg.seeds + 1):
        for target in cfg.targets:
            fields = {"curiosity.space": "semantic", "curiosity.target_mode": target, **step_budget(cfg.rl, True)}
            subruns.append(arm_run(cfg, cfg.task, f"target_{target}", fields, seed))
            runs.setdefault(target, {})[seed] = subruns[-1].run_dir
    launch(subruns, cfg, cfg.out)
    raw = {
        t: {str(seed): seed_metrics(d, cfg.rl.phase1_steps) for seed, d in seeds.items()} for t, seeds in runs.items()
    }
    summary = {t: {m: mean_ci([v[m] for v in seeds.values()]) for m in METRICS} for t, seeds in raw.items()}
    seconds = {t: [run_seconds(d) for d in seeds.values()] for t, seeds in runs.items()}
    wall = time.perf_counter() - t0
    notes = [
        f"task {cfg.task}; encoder {cfg.rl.encoder} ({weights or 'random init'}); {cfg.rl.phase1_steps} + "
        f"{cfg.rl.phase2_steps} environment steps; {cfg.seeds} seeds; mean ± 95% t-interval over seeds",
        "per run: " + ", ".join(f"{t} {np.nanmean(s):.0f} s" for t, s in seconds.items()),
    ]
    text = table(summary, cfg.rl.eval_episodes)
    results = {"summary": summary, "run_seconds": seconds}
    write_outputs(cfg.out, cfg, raw, results, text, wall, notes)
    figure(cfg, runs, cfg.out / "phase2_health.png")
    print(text)
    print(f"phase2_health: {wall:.0f} s -> {cfg.out}")
    return 0


__all__ = ["BUDGETS", "Phase2HealthConfig", "encoder_curves", "main", "seed_metrics"]

if __name__ == "__main__":
    sys.exit(main())
