"""PPO settings sweep: which rollout length, epochs, minibatch, learning rate, entropy and network let extrinsic PPO
learn ``ObjectNav-v0`` up to what its observation allows, on the oracle (ground-truth cells) and pixel observations.

    python -m experiments.studies.ppo_sweep --workers 2 --out runs/studies/ppo_sweep
    python -m experiments.studies.ppo_sweep --observations oracle --settings base epochs4 --seeds 3   # a part

Every setting is a set of ``TwoPhaseConfig`` overrides of the studies' shared settings (``--rl.*``: the studies'
``ObjectNav-v0`` of 12x12 cells, 60-step episodes, 128 training scenes, a step budget of ``--rl.phase1-steps``), run
as extrinsic-only PPO (no curiosity) for ``--seeds`` seeds. Each run's evaluation gives held-out (test split) and
training-scene success on the same episodes as the reference policies (random walk, blind persistent walk,
recognition + persistent walk), so the table reads, per setting and observation, the held-out success and SPL
(mean ± 95% t-interval over seeds, IQM), the training-scene success beside it (memorising shows as a gap), the
paired difference from the blind persistent walk (per seed over the same episodes, then over seeds) and the
probability that the setting beats the blind walk (rliable).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.studies.config import SMOKE_RL, RLStudyConfig, arm_run, start_rl_study, step_budget, study_rl
from experiments.studies.launch import launch
from experiments.studies.outputs import markdown_table, write_outputs
from experiments.studies.two_phase_runs import TwoPhaseRun, eval_report, eval_summary, run_seconds
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.evaluation import PAIRED_KEY
from techniques.rl_navigation.reference_policies import BLIND_WALK, RECOGNITION_WALK
from techniques.rl_navigation.statistics import fmt_ci, fmt_interval, iqm_ci, mean_ci, probability_of_improvement

#: PPO settings: overrides of the studies' shared PPO settings (``--rl.ppo.*``: rollouts of 16 agents x 128 steps,
#: 4 epochs, minibatch 512, learning rate 3e-4, entropy 0.01, MLP 128x128, cells embedded in 16 values).
SETTINGS: dict[str, dict[str, Any]] = {
    "base": {},
    "epochs4": {"ppo.n_epochs": 4},
    "minibatch256": {"ppo.batch_size": 256},
    "rollout64": {"ppo.n_steps": 64, "ppo.batch_size": 256},
    "lr1e-3": {"ppo.learning_rate": 1e-3},
    "ent0.001": {"ppo.ent_coef": 0.001},
    "net256": {"ppo.net_arch": (256, 256)},
}
#: Observations: TwoPhaseConfig overrides.
OBSERVATIONS: dict[str, dict[str, Any]] = {
    "oracle": {"observation": "oracle"},
    "pixels": {"observation": "pixels"},
    "window": {"observation": "window"},
}
REFERENCES = ("random walk", BLIND_WALK, RECOGNITION_WALK)


@dataclass
class PPOSweepConfig(RLStudyConfig):
    """Extrinsic PPO on ObjectNav-v0 over PPO settings and observations, several seeds."""

    out: Path = Path("runs/studies/ppo_sweep")
    """output folder"""
    task: str = "ObjectNav-v0"
    """task (a registered environment id)"""
    observations: tuple[str, ...] = ("oracle", "pixels")
    """observations to sweep (oracle, pixels, window: the encoder's features)"""
    settings: tuple[str, ...] = tuple(SETTINGS)
    """PPO settings to sweep (base, epochs4, minibatch256, rollout64, lr1e-3, ent0.001, net256)"""
    rl: TwoPhaseConfig = field(default_factory=lambda: study_rl(encoder="vit_pico_patch14", phase2_steps=0))


BUDGETS = {
    "smoke": {"seeds": 2, "settings": ("base", "epochs4"), **SMOKE_RL, "rl.phase2_steps": 0, "rl.eval_episodes": 8},
    "cpu": {"seeds": 5},
}


def run_fields(observation: str, setting: str) -> dict[str, Any]:
    """``TwoPhaseConfig`` fields of one sweep cell: extrinsic PPO with the setting's and the observation's fields."""
    return {"curiosity.space": "none", "intrinsic_coef": 0.0, **OBSERVATIONS[observation], **SETTINGS[setting]}


def collect(runs: dict[tuple[str, str], dict[int, Path]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Per-seed values ``{row: {seed: {metric: value}}}`` for the sweep rows and the reference policies.

    Metrics: ``success``, ``spl``, ``train_success`` and ``blind_diff`` (success minus the blind walk's, paired over
    the seed's test episodes); the references per observation, from the first setting's runs."""
    raw: dict[str, dict[str, dict[str, float]]] = {}
    references: dict[str, dict[str, dict[str, float]]] = {}  # the last rows
    first: dict[str, str] = {}
    for (observation, setting), seeds in runs.items():
        first.setdefault(observation, setting)
        for seed, run_dir in seeds.items():
            report = eval_report(run_dir, "test")
            test, train, paired = report["results"], eval_summary(run_dir, "train"), report[PAIRED_KEY]
            row = raw.setdefault(f"{observation} / {setting}", {})
            row[str(seed)] = {
                "success": test["final"]["success"]["mean"],
                "spl": test["final"]["spl"]["mean"],
                "train_success": train["final"]["success"]["mean"],
                "blind_diff": paired["final"]["mean"],
            }
            if first[observation] == setting:
                for ref in REFERENCES:
                    references.setdefault(f"{observation} / {ref}", {})[str(seed)] = {
                        "success": test[ref]["success"]["mean"],
                        "spl": test[ref]["spl"]["mean"],
                        "train_success": train[ref]["success"]["mean"],
                        "blind_diff": paired[ref]["mean"] if ref != BLIND_WALK else 0.0,
                    }
    return {**raw, **references}


def summarize(raw: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per row: mean ± t-interval over seeds of every metric, the IQM of success, and P(success > blind walk)."""
    out: dict[str, dict[str, Any]] = {}
    for row, seeds in raw.items():
        keys = sorted(seeds, key=int)
        s: dict[str, Any] = {m: mean_ci([seeds[k][m] for k in keys]) for m in next(iter(seeds.values()))}
        s["success_iqm"] = iqm_ci(np.asarray([[seeds[k]["success"]] for k in keys]))
        observation = row.split(" / ")[0]
        blind = raw.get(f"{observation} / {BLIND_WALK}")
        if blind is not None and not row.endswith(BLIND_WALK):
            shared = [k for k in keys if k in blind]
            s["p_beats_blind"] = probability_of_improvement(
                np.asarray([[seeds[k]["success"]] for k in shared]), np.asarray([[blind[k]["success"]] for k in shared])
            )
        out[row] = s
    return out


def table(summary: dict[str, dict[str, Any]], seconds: dict[str, float], episodes: int) -> str:
    header = [
        "observation / setting",
        "seeds",
        "test success",
        "test success IQM",
        "train success",
        "test SPL",
        "success − blind walk (paired)",
        "P(success > blind walk)",
        "s / run",
    ]
    body = []
    for row, s in summary.items():
        iqm = s["success_iqm"]
        p = s.get("p_beats_blind")
        body.append(
            [
                row,
                str(s["success"]["n"]),
                fmt_ci(s["success"]),
                fmt_interval(iqm["iqm"], iqm["low"], iqm["high"]),
                fmt_ci(s["train_success"]),
                fmt_ci(s["spl"]),
                fmt_ci(s["blind_diff"]),
                fmt_interval(p["p"], p["low"], p["high"], 2) if p else "",
                f"{seconds[row]:.0f}" if row in seconds else "",
            ]
        )
    return (
        f"Held-out (test split) and training-scene success, {episodes} episodes per policy, split and seed; mean ± 95% "
        "t-interval over seeds, IQM [stratified-bootstrap 95% interval]; the paired difference from the blind "
        "persistent walk is over each seed's test episodes (the same for every policy), then over seeds\n\n"
        + markdown_table(header, body)
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg, weights, t0 = start_rl_study(PPOSweepConfig, argv, BUDGETS, __doc__.split("\n\n")[0])
    unknown = sorted({*cfg.settings} - set(SETTINGS)) + sorted({*cfg.observations} - set(OBSERVATIONS))
    if unknown:
        raise ValueError(f"unknown --settings / --observations {unknown}; choose from {list(SETTINGS)}, "
                         f"{list(OBSERVATIONS)}")  # fmt: skip
    subruns: list[TwoPhaseRun] = []
    runs: dict[tuple[str, str], dict[int, Path]] = {}
    for seed in range(1, cfg.seeds + 1):  # seed-major: a partial sweep still has every cell
        for observation in cfg.observations:
            for setting in cfg.settings:
                fields = {**run_fields(observation, setting), **step_budget(cfg.rl, False)}
                subruns.append(arm_run(cfg, cfg.task, f"{observation}_{setting}", fields, seed))
                runs.setdefault((observation, setting), {})[seed] = subruns[-1].run_dir
    launch(subruns, cfg, cfg.out)
    raw = collect(runs)
    summary = summarize(raw)
    seconds = {
        f"{o} / {s}": float(np.nanmean([run_seconds(d) for d in seeds.values()])) for (o, s), seeds in runs.items()
    }
    wall = time.perf_counter() - t0
    notes = [
        f"task {cfg.task}; extrinsic-only PPO, {cfg.rl.phase1_steps + cfg.rl.phase2_steps} environment steps per run; "
        f"{cfg.seeds} seeds; "
        f"{cfg.rl.n_train_scenes} training scenes, {cfg.rl.n_eval_scenes} held-out test scenes; encoder "
        f"{cfg.rl.encoder} ({weights or 'random init'}), read only by the window observation",
        "s / run: wall seconds of training and both evaluations, per run, with the study's --workers sharing the CPU",
    ]
    text = table(summary, seconds, cfg.rl.eval_episodes)
    write_outputs(cfg.out, cfg, raw, {"summary": summary, "run_seconds": seconds}, text, wall, notes)
    print(text)
    print(f"ppo_sweep: {wall:.0f} s -> {cfg.out}")
    return 0


__all__ = ["BUDGETS", "OBSERVATIONS", "SETTINGS", "PPOSweepConfig", "collect", "main", "summarize"]

if __name__ == "__main__":
    sys.exit(main())
