"""Shared machinery of the results studies: budgets and config parsing, shared encoders, two_phase sub-runs,
statistics (mean and 95% t-interval over seeds; rliable's IQM and probability of improvement, both from
:mod:`techniques.rl_navigation.statistics`), TensorBoard scalars, result files and matplotlib figures.

Every study writes into its ``--out`` folder: ``config.json`` (the resolved study config), ``raw.json`` (per-seed
numbers), ``results.json`` (summaries), ``table.md`` (the markdown table quoted in the README) and PNG figures;
its RL sub-runs are ordinary ``experiments.two_phase`` run folders under ``<out>/runs/`` (each with its own
``config.json``), reused when they already finished (``eval/summary_test.json`` present and the same config).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from techniques.rl_navigation.statistics import fmt_ci, mean_ci, t_quantile

logger = logging.getLogger("experiments.studies")

T = TypeVar("T")
S = TypeVar("S", bound="RLStudyConfig")

#: Where the shared encoders (tiny pretrained teacher, distilled student) are built once and reused.
DEFAULT_ENCODERS_DIR = Path("runs/studies/encoders")


# ------------------------------------------------------------------------------------------------ statistics
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table from a header and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ config
def parse_study_config(
    cls: type[T],
    argv: Sequence[str] | None,
    budgets: Mapping[str, Mapping[str, Any]],
    description: str,
    default_budget: str = "cpu",
) -> T:
    """Parse a study config: ``--budget NAME`` (default ``default_budget``) applies a named budget (a preset),
    other flags override it."""
    import sys

    from encoders.utils.config import parse_config

    args = list(sys.argv[1:] if argv is None else argv)
    rewritten: list[str] = []
    for a in args:
        if a == "--budget":
            rewritten.append("--preset")
        elif a.startswith("--budget="):
            rewritten.append("--preset=" + a.split("=", 1)[1])
        else:
            rewritten.append(a)
    presets = {name: {**values, "budget": name} for name, values in budgets.items()}
    return parse_config(cls, rewritten, presets=presets, description=description, default_preset=default_budget)


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON (atomically), NaN written as ``null``."""
    from encoders.checkpoint import atomic_write_text

    return atomic_write_text(json.dumps(_nan_to_none(data), indent=2) + "\n", Path(path))


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def write_outputs(
    out: Path, cfg: Any, raw: Any, results: Mapping[str, Any], table: str, wall_s: float, notes: Sequence[str] = ()
) -> None:
    """``config.json``, ``raw.json``, ``results.json`` (with the wall time) and ``table.md`` in ``out``."""
    from encoders.checkpoint import atomic_write_text
    from encoders.utils.config import save_config

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    save_json(raw, out / "raw.json")
    save_json({**results, "wall_seconds": round(wall_s, 1), "notes": list(notes)}, out / "results.json")
    text = table + f"\n\nWall time: {wall_s / 60:.1f} min (budget `{cfg.budget}`).\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic_write_text(text, out / "table.md")


# ------------------------------------------------------------------------------------------------ encoders
def pretrained_encoder(encoders_dir: Path, image_size: int = 168, seed: int = 0) -> Path:
    """The tiny pretrained ``vit_mini_patch14`` teacher backbone, pretrained once with the demo recipe
    (``experiments.two_phase.pretrain_demo_encoder``: 512 procedural train-split scenes, pretrain preset ``tiny``)
    into ``encoders_dir/pretrain`` and reused when ``run/teacher_backbone.pth`` exists."""
    from experiments.two_phase import parse_args, pretrain_demo_encoder

    weights = encoders_dir / "pretrain" / "run" / "teacher_backbone.pth"
    if weights.exists():
        return weights
    # pretrain preset pinned to ``tiny`` (300 iterations): the encoder of the README's study tables (the demo itself
    # now pretrains with the shorter ``demo`` preset)
    argv = ["--preset", "demo", "--pretrain-preset", "tiny", "--image-size", str(image_size), "--seed", str(seed)]
    cfg = parse_args(argv)
    return pretrain_demo_encoder(cfg, encoders_dir / "pretrain")


def distilled_student(encoders_dir: Path, teacher_dir: Path, epochs: int = 0) -> tuple[Path | None, str]:
    """The ``vit_pico_patch14`` student distilled (``experiments.distill --preset tiny``; ``epochs`` > 0 replaces
    the preset's 12 epochs of 25 iterations, the whole schedule shortened) from the pretraining run in
    ``teacher_dir`` on its images, built once into ``encoders_dir/distill``; ``(None, why)`` on failure."""
    weights = encoders_dir / "distill" / "student_backbone.pth"
    if weights.exists():
        return weights, ""
    try:
        from experiments import distill
    except Exception as e:  # the distillation CLI is optional for the studies
        return None, f"experiments.distill not importable: {e}"
    argv = [
        "--preset",
        "tiny",
        "--teacher-weights",
        str(teacher_dir / "run" / "checkpoint.pth"),
        "--data",
        str(teacher_dir / "images"),
        "--output",
        str(encoders_dir / "distill"),
        "--train.device",
        "cpu",
    ]
    if epochs > 0:
        argv += ["--optim.epochs", str(epochs)]
    if (encoders_dir / "distill" / "checkpoint.pth").exists():
        argv.append("--resume")
    t0 = time.perf_counter()
    try:
        rc = distill.main(argv)
    except Exception as e:
        return None, f"experiments.distill failed: {type(e).__name__}: {e}"
    finally:
        from encoders.utils.logging import setup_logging

        setup_logging()
    if rc != 0 or not weights.exists():
        return None, f"experiments.distill exited with code {rc}"
    logger.info("distilled student in %.0f s: %s", time.perf_counter() - t0, weights)
    return weights, ""


# ------------------------------------------------------------------------------------------------ RL sub-runs
@dataclass
class RLSettings:
    """The ``experiments.two_phase`` settings shared by a study's sub-runs (``--rl.*``); arms add their own."""

    preset: str = "demo"
    """two_phase preset the settings below override"""
    encoder: str = "vit_mini_patch14"
    """encoder architecture (the tiny pretrained encoder's)"""
    encoder_weights: str | None = None
    """encoder checkpoint; none: the shared tiny pretrained encoder (cpu budget) or random init (smoke)"""
    image_size: int = 168
    """scene side in pixels (168 with patch 14: 12x12 cells)"""
    n_train_scenes: int = 16
    """procedural training scenes"""
    n_eval_scenes: int = 16
    """held-out test scenes of the final evaluation"""
    min_start_distance: int = 5
    """minimum start distance from the goal (cells)"""
    max_episode_steps: int = 60
    """time limit per episode"""
    phase1_episodes: int = 600
    """episodes of phase 1"""
    phase2_episodes: int = 300
    """episodes of phase 2 (arms without phase 2 train phase1 + phase2 episodes in phase 1, same total)"""
    n_envs: int = 16
    """parallel agents"""
    n_steps: int = 64
    """PPO rollout length per agent"""
    batch_size: int = 256
    """PPO and forward-model minibatch size"""
    intrinsic_coef: float = 0.5
    """scale of the normalised intrinsic reward"""
    observation: Literal["mean", "window"] = "mean"
    """feature observation: 'mean' (window-mean features, what the README's study tables used) or 'window'"""
    patch_radius: int = 1
    """observed window radius in cells"""
    include_heading: bool = False
    """add the last move's direction to the observation (the demo preset does)"""
    eval_episodes: int = 96
    """episodes of the final held-out evaluation, per policy"""
    torch_threads: int = 1
    """torch CPU threads per run"""
    device: str = "auto"
    """device of the encoder / forward model"""

    def args(self, weights: str | None) -> list[str]:
        """two_phase flags of these settings (``weights`` overrides :attr:`encoder_weights`)."""
        out = ["--preset", self.preset, "--no-pretrain", "--encoder", self.encoder]
        weights = weights or self.encoder_weights
        if weights:
            out += ["--encoder-weights", str(weights)]
        flags = {
            "--image-size": self.image_size,
            "--n-train-scenes": self.n_train_scenes,
            "--n-eval-scenes": self.n_eval_scenes,
            "--min-start-distance": self.min_start_distance,
            "--max-episode-steps": self.max_episode_steps,
            "--n-envs": self.n_envs,
            "--ppo.n-steps": self.n_steps,
            "--ppo.batch-size": self.batch_size,
            "--curiosity.forward-batch-size": self.batch_size,
            "--intrinsic-coef": self.intrinsic_coef,
            "--observation": self.observation,
            "--patch-radius": self.patch_radius,
            "--eval-episodes": self.eval_episodes,
            "--torch-threads": self.torch_threads,
            "--device": self.device,
            "--checkpoint-every": 100_000,
            "--trajectory-every": 0,
        }
        for flag, value in flags.items():
            out += [flag, str(value)]
        out.append("--include-heading" if self.include_heading else "--no-include-heading")
        return out


@dataclass
class RLStudyConfig:
    """The fields every RL study takes (each study subclasses it, overriding ``out`` and ``rl`` defaults)."""

    out: Path = Path("runs/studies")
    """output folder"""
    budget: str = "cpu"
    """budget name (set by --budget: smoke | cpu)"""
    seeds: int = 5
    """seeds per arm (1..N; rliable's intervals need several)"""
    encoders_dir: Path = DEFAULT_ENCODERS_DIR
    """shared encoders (the tiny pretrained one is built here once)"""
    official_weights: str | None = None
    """use this checkpoint of --official-arch as the encoder instead of the tiny pretrained one"""
    official_arch: str = "dinov2_vits14"
    """architecture of --official-weights"""
    rl: RLSettings = field(default_factory=RLSettings)


#: RL settings of the smoke budget (seconds per sub-run, random-init pico encoder).
SMOKE_RL: dict[str, Any] = {
    "rl.preset": "smoke",
    "rl.encoder": "vit_pico_patch14",
    "rl.image_size": 112,
    "rl.n_train_scenes": 1,
    "rl.n_eval_scenes": 1,
    "rl.min_start_distance": 3,
    "rl.max_episode_steps": 8,
    "rl.phase1_episodes": 4,
    "rl.phase2_episodes": 4,
    "rl.n_envs": 4,
    "rl.n_steps": 8,
    "rl.batch_size": 32,
    "rl.eval_episodes": 4,
}


def study_encoder_weights(rl: RLSettings, budget: str, encoders_dir: Path) -> str | None:
    """Encoder weights of a study's sub-runs: explicit ``--rl.encoder-weights``; else the shared tiny pretrained
    encoder (built if missing) except in the smoke budget (random init unless it already exists)."""
    if rl.encoder_weights:
        return rl.encoder_weights
    weights = encoders_dir / "pretrain" / "run" / "teacher_backbone.pth"
    if budget == "smoke" or rl.encoder != "vit_mini_patch14":
        return str(weights) if weights.exists() and rl.encoder == "vit_mini_patch14" else None
    return str(pretrained_encoder(encoders_dir, rl.image_size))


def start_rl_study(
    config_cls: type[S], argv: Sequence[str] | None, budgets: Mapping[str, Mapping[str, Any]], description: str
) -> tuple[S, str | None, list[str], float]:
    """The start every RL study shares: parse its config (budget presets), set up logging, let
    ``--official-weights`` replace the encoder, resolve the sub-runs' encoder weights. Returns the config, those
    weights (None: random init), the ``experiments.two_phase`` flags shared by its sub-runs and the start time
    (``time.perf_counter()``)."""
    from encoders.utils.logging import setup_logging

    cfg = parse_study_config(config_cls, argv, budgets, description)
    setup_logging()
    t0 = time.perf_counter()
    if cfg.official_weights:
        cfg.rl.encoder, cfg.rl.encoder_weights = cfg.official_arch, cfg.official_weights
    weights = study_encoder_weights(cfg.rl, cfg.budget, cfg.encoders_dir)
    return cfg, weights, cfg.rl.args(weights), t0


def run_two_phase(run_dir: Path, args: Sequence[str]) -> Path:
    """Run ``experiments.two_phase`` with ``args`` into ``run_dir`` unless it already finished with the same
    arguments (``study_args.json`` equal, ``study_time.json`` written at the end); a stale folder is replaced."""
    import shutil

    from experiments import two_phase

    args = [*args, "--run-dir", str(run_dir)]
    marker = run_dir / "study_args.json"
    done = run_dir / "study_time.json"
    if done.exists() and marker.exists() and json.loads(marker.read_text()) == list(args):
        logger.info("reusing finished run %s", run_dir)
        return run_dir
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    rc = two_phase.main(list(args))
    if rc != 0:
        raise RuntimeError(f"experiments.two_phase {' '.join(args)} exited with code {rc}")
    save_json({"seconds": round(time.perf_counter() - t0, 1)}, run_dir / "study_time.json")
    marker.write_text(json.dumps(list(args)))
    return run_dir


def phase_args(rl: RLSettings, phase2: bool) -> list[str]:
    """Episode flags: ``phase1 + phase2`` episodes of phase 1 only, or the two phases (same total either way)."""
    if phase2:
        return ["--phase1-episodes", str(rl.phase1_episodes), "--phase2-episodes", str(rl.phase2_episodes)]
    return ["--phase1-episodes", str(rl.phase1_episodes + rl.phase2_episodes), "--phase2-episodes", "0"]


def run_arm(out: Path, base: Sequence[str], task: str, arm: str, extra: Sequence[str], seed: int) -> Path:
    """One sub-run ``<out>/runs/<task>/<arm>__seed<seed>`` of ``two_phase base --task task extra --seed seed``."""
    run_dir = out / "runs" / task / f"{arm}__seed{seed}"
    return run_two_phase(run_dir, [*base, "--task", task, "--exp-name", arm, *extra, "--seed", str(seed)])


def run_seconds(run_dir: Path) -> float:
    """Wall seconds of a sub-run (training + evaluation) as recorded by :func:`run_two_phase`."""
    path = run_dir / "study_time.json"
    return float(json.loads(path.read_text())["seconds"]) if path.exists() else float("nan")


def eval_summary(run_dir: Path, split: str = "test") -> dict[str, dict[str, dict[str, float]]]:
    """The final held-out evaluation of a run: ``{policy label: {metric: {"mean", "ci95", "n"}}}``."""
    return json.loads((run_dir / "eval" / f"summary_{split}.json").read_text())["results"]


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """TensorBoard scalars of a run: ``{tag: (steps, values)}`` for the tags present (event files under
    ``run_dir``, the pretraining sub-folder excluded)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, tuple[list[int], list[float]]] = {}
    files = sorted(p for p in run_dir.rglob("events.out.tfevents*") if "pretrain" not in p.relative_to(run_dir).parts)
    for folder in sorted({p.parent for p in files}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        available = set(acc.Tags().get("scalars", []))
        for tag in tags:
            if tag in available:
                steps, values = out.setdefault(tag, ([], []))
                for event in acc.Scalars(tag):
                    steps.append(int(event.step))
                    values.append(float(event.value))
    result = {}
    for tag, (steps, values) in out.items():
        order = np.argsort(steps, kind="stable")
        result[tag] = (np.asarray(steps)[order], np.asarray(values)[order])
    return result


def curve_by_episodes(run_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """A scalar against training episodes (``charts/episodes`` logged at the same steps)."""
    s = read_scalars(run_dir, ["charts/episodes", tag])
    if tag not in s or "charts/episodes" not in s:
        return np.zeros(0), np.zeros(0)
    ep_steps, episodes = s["charts/episodes"]
    steps, values = s[tag]
    lookup = dict(zip(ep_steps.tolist(), episodes.tolist()))
    keep = [i for i, st in enumerate(steps.tolist()) if st in lookup]
    return np.asarray([lookup[int(steps[i])] for i in keep], dtype=np.float64), values[keep]


def binned_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-seed curves ``(x, y)`` averaged in the bins ``grid[i]..grid[i+1]``, then mean and 95% t-interval over
    seeds: ``(bin centres, mean, half-width)`` (bins empty in a seed are skipped for it)."""
    centres = (grid[:-1] + grid[1:]) / 2
    per_seed = np.full((len(curves), len(centres)), np.nan)
    for k, (x, y) in enumerate(curves):
        idx = np.digitize(x, grid) - 1
        for b in range(len(centres)):
            sel = idx == b
            if sel.any():
                per_seed[k, b] = float(np.mean(y[sel]))
    stats = [mean_ci(per_seed[:, b].tolist()) for b in range(len(centres))]
    return centres, np.asarray([s["mean"] for s in stats]), np.asarray([s["ci95"] for s in stats])


# ------------------------------------------------------------------------------------------------ figures
def new_figure(ncols: int = 1, width: float = 4.2, height: float = 3.0) -> tuple[Any, Any]:
    """A matplotlib figure (Agg backend) with ``ncols`` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG (tight layout) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_band(ax: Any, x: np.ndarray, mean: np.ndarray, half: np.ndarray, label: str) -> None:
    """A mean curve with its 95% band (NaN half-widths draw no band)."""
    line = ax.plot(x, mean, label=label, lw=1.5)[0]
    lo, hi = mean - np.nan_to_num(half), mean + np.nan_to_num(half)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def bar_chart(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[Mapping[str, float]]], ylabel: str) -> None:
    """Grouped bars with 95% error bars: ``series[name][i]`` is the summary of ``groups[i]``."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, summaries) in enumerate(series.items()):
        means = [s["mean"] for s in summaries]
        errs = [0.0 if math.isnan(s["ci95"]) else s["ci95"] for s in summaries]
        ax.bar(x + (k - (n - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=name)
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


__all__ = [
    "DEFAULT_ENCODERS_DIR",
    "SMOKE_RL",
    "RLSettings",
    "bar_chart",
    "binned_curves",
    "curve_by_episodes",
    "distilled_student",
    "eval_summary",
    "fmt_ci",
    "markdown_table",
    "mean_ci",
    "new_figure",
    "parse_study_config",
    "phase_args",
    "plot_band",
    "pretrained_encoder",
    "read_scalars",
    "run_arm",
    "run_seconds",
    "run_two_phase",
    "save_figure",
    "save_json",
    "study_encoder_weights",
    "t_quantile",
    "timed",
    "write_outputs",
]
