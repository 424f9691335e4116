"""Study 3, the noisy TV: in scenes where some objects change colour every step, does pixel-space curiosity get
drawn to them while semantic-space curiosity does not?

    python -m experiments.studies.flicker --budget cpu --out runs/studies/flicker

Arms (phase 1 only, same episodes; ``--arms``): PPO + curiosity in pixel space, in the semantic encoder's space, in
a random-init encoder's space, in ICM's inverse-dynamics space, RND on the semantic features, and extrinsic-only PPO
as the reference, on ``ImageNavFlicker-v0`` (or ``--task ObjectNavFlicker-v0``; 2 objects per scene take a random
colour variant every step). Each trained policy (and a random walk) then runs ``--episodes`` episodes on the
*training* scenes (where curiosity shaped the policy, and the flickering objects are the ones seen in training) and
on held-out *test* scenes; per episode the fraction of steps with a flickering object inside the observed window
(``info["near_flicker_fraction"]`` at the last step) and the coverage are recorded. Mean and 95% t-interval over
seeds.

How loud is the TV in each space? On the training scenes, each curiosity run's final learner gives what it
predicts for every state (``prediction_targets``: the forward model's targets, ICM's ``phi``, RND's random target;
layer-normed, as the ``mse_ln`` loss sees them); these are compared between the flicker variants of the same cell
(irreducible noise: nothing the agent does predicts the variant) and between neighbouring cells of one variant
(the signal of a move): ``noise / signal`` per scene (its mean over the seeds, which share the scenes), mean and
95% t-interval over scenes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.studies.config import SMOKE_RL, RLSettings, RLStudyConfig, arm_run, start_rl_study
from experiments.studies.figures import bar_chart, new_figure, save_figure
from experiments.studies.launch import launch
from experiments.studies.outputs import markdown_table, save_json, write_outputs
from experiments.studies.two_phase_runs import TwoPhaseRun, run_seconds, torch_threads
from techniques.rl_navigation.statistics import fmt_ci, fmt_interval, iqm_ci, mean_ci, probability_of_improvement

logger = logging.getLogger("experiments.studies.flicker")

#: (arm, table label, ``TwoPhaseConfig`` fields); the first arm's run also evaluates a random walk.
ARMS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("pixels", "PPO + pixel curiosity", {"curiosity.space": "pixels"}),
    ("semantic", "PPO + semantic curiosity", {"curiosity.space": "semantic"}),
    ("ppo", "PPO, extrinsic only", {"curiosity.space": "none", "intrinsic_coef": 0.0}),
    ("random", "PPO + random-encoder curiosity", {"curiosity.space": "random"}),
    ("inverse", "PPO + ICM (inverse-dynamics features)", {"curiosity.space": "inverse"}),
    ("rnd", "PPO + RND", {"curiosity.space": "rnd"}),
)
METRICS = ("near_flicker", "coverage", "success")
SPLITS = ("train", "test")
EVAL_FILE = "study_flicker.json"


@dataclass
class FlickerConfig(RLStudyConfig):
    """Noisy-TV study: time spent next to flickering objects, pixel- vs semantic-space curiosity."""

    out: Path = Path("runs/studies/flicker")
    """output folder"""
    task: str = "ImageNavFlicker-v0"
    """flicker task"""
    arms: tuple[str, ...] = tuple(a for a, _, _ in ARMS)
    """arms to run (pixels, semantic, ppo, random, inverse, rnd); the first one's runs also evaluate a random walk"""
    episodes: int = 64
    """episodes per policy, split and seed in the near-flicker evaluation"""
    rl: RLSettings = field(default_factory=lambda: RLSettings(intrinsic_coef=1.0, phase2_steps=0, eval_episodes=0))


BUDGETS = {
    "smoke": {
        "seeds": 2,
        "episodes": 4,
        "arms": ("pixels", "semantic", "ppo", "rnd"),
        **SMOKE_RL,
        "rl.phase2_steps": 0,
        "rl.eval_episodes": 0,
    },
    "cpu": {},
}


def flicker_episodes(run_dir: Path, split: str, episodes: int, random_walk: bool = False) -> dict[str, float]:
    """Run a run's final policy (or a random walk) for ``episodes`` episodes of ``split``: mean per-episode
    fraction of steps next to a flickering object, coverage and success."""
    from encoders.utils.config import load_config
    from techniques.rl_navigation.checkpointing import ENCODER_FILE, POLICY_FILE, checkpoint_dir
    from techniques.rl_navigation.config import TwoPhaseConfig
    from techniques.rl_navigation.environment import make_env
    from techniques.rl_navigation.evaluation import load_policy, policy_actor, random_actor, run_episodes
    from techniques.rl_navigation.semantic_encoder import SemanticEncoder

    cfg = load_config(TwoPhaseConfig, run_dir)
    ckpt = checkpoint_dir(run_dir, "final")
    encoder = SemanticEncoder.from_name(cfg.encoder, ckpt / ENCODER_FILE, "cpu", cfg.precision)
    n_envs = min(cfg.n_envs, episodes)
    env = make_env(cfg, encoder, split, cfg.n_train_scenes if split == "train" else cfg.n_eval_scenes, n_envs)
    seed = cfg.seed + 20_000
    env.seed(seed)
    if random_walk:
        act = random_actor(env.action_space.n, n_envs, seed)
    else:
        act = policy_actor(load_policy(ckpt / POLICY_FILE, cfg.policy))
    results = run_episodes(env, act, episodes, max_frames=0)
    env.close()
    return {m: float(np.mean(getattr(results, m))) for m in METRICS}


@dataclass
class FlickerRun(TwoPhaseRun):
    """A flicker arm's two_phase run, then the near-flicker evaluation of its final policy (and of a random walk,
    ``random_walk``) on the train and test scenes, ``episodes`` each, and the flicker's loudness in its curiosity
    space, written to ``<run_dir>/study_flicker.json`` (``{"episodes", "policy": {split: metrics}, "random walk":
    {split: metrics}, "target_noise": target_noise(run_dir)}``)."""

    episodes: int = 64
    random_walk: bool = False

    def _evaluation(self) -> dict[str, Any] | None:
        path = self.run_dir / EVAL_FILE
        data = json.loads(path.read_text()) if path.exists() else None
        wanted = data is not None and data["episodes"] == self.episodes and ("random walk" in data) == self.random_walk
        wanted = wanted and "target_noise" in data
        return data if wanted else None

    def done(self) -> bool:
        return self.trained() and self._evaluation() is not None

    def __call__(self) -> None:
        super().__call__()
        if self._evaluation() is not None:
            return
        with torch_threads(self.cfg.torch_threads):
            data: dict[str, Any] = {"episodes": self.episodes}
            data["policy"] = {split: flicker_episodes(self.run_dir, split, self.episodes) for split in SPLITS}
            if self.random_walk:
                data["random walk"] = {s: flicker_episodes(self.run_dir, s, self.episodes, True) for s in SPLITS}
            data["target_noise"] = target_noise(self.run_dir)
        save_json(data, self.run_dir / EVAL_FILE)


def target_noise(run_dir: Path) -> dict[str, list[float]] | None:
    """How loud the flicker is in the run's curiosity space (``None`` without curiosity): per training scene, the
    layer-normed MSE of the learner's :meth:`~techniques.rl_navigation.curiosity.CuriosityLearner.prediction_targets`
    between flicker variants of a cell next to a flickering object (``noise_near_flicker``) and of the other cells
    (``noise_elsewhere``), between neighbouring cells of one variant (``move_signal``), and their ratio
    (``noise_to_signal``). The learner (forward model, ICM's ``phi``, RND's target) is the run's final one."""
    import tempfile

    import torch
    import torch.nn.functional as F

    from encoders.utils.config import load_config
    from techniques.rl_navigation.checkpointing import checkpoint_dir
    from techniques.rl_navigation.config import TwoPhaseConfig
    from techniques.rl_navigation.feature_sources import AgentStates
    from techniques.rl_navigation.trainer import TwoPhaseTrainer

    cfg = load_config(TwoPhaseConfig, run_dir)
    if cfg.curiosity.space == "none":
        return None
    with tempfile.TemporaryDirectory() as scratch:  # the loaded trainer's TensorBoard files go here, not to the run
        trainer = TwoPhaseTrainer(cfg, scratch, resume_from=checkpoint_dir(run_dir, "final"))
        try:
            core = trainer.env.core
            n_scenes, n_variants = core.world.images.shape[:2]
            h, w = core.h, core.w
            near = np.asarray(core._near_flicker)  # (S, h, w) bool, the grid behind info["near_flicker"]
            grids = np.meshgrid(*(np.arange(n) for n in (n_scenes, n_variants, h, w)), indexing="ij")
            states = AgentStates(*(g.ravel() for g in grids), np.zeros(grids[0].size, dtype=np.int64))
            learner = trainer.curiosity.learner
            with torch.no_grad(), trainer.encoder.autocast():
                chunks = [learner.prediction_targets(states[i : i + 4096]) for i in range(0, len(states), 4096)]
        finally:
            trainer.close()
    t = torch.cat(chunks).float().cpu()
    t = F.layer_norm(t, (t.shape[-1],)).reshape(n_scenes, n_variants, h, w, -1)
    pairs = [(a, b) for a in range(n_variants) for b in range(a + 1, n_variants)]
    noise = torch.stack([((t[:, a] - t[:, b]) ** 2).mean(-1) for a, b in pairs]).mean(0)  # (S, h, w)
    v0 = t[:, 0]
    move = torch.cat(
        [
            ((v0[:, 1:] - v0[:, :-1]) ** 2).mean(-1).flatten(1),
            ((v0[:, :, 1:] - v0[:, :, :-1]) ** 2).mean(-1).flatten(1),
        ],
        dim=1,
    ).mean(1)  # (S,)
    scenes = [k for k in range(n_scenes) if near[k].any() and (~near[k]).any()]
    per_scene = [float(noise[k][torch.from_numpy(near[k])].mean()) for k in scenes]
    signal = [float(move[k]) for k in scenes]
    return {
        "noise_near_flicker": per_scene,
        "noise_elsewhere": [float(noise[k][torch.from_numpy(~near[k])].mean()) for k in scenes],
        "move_signal": signal,
        "noise_to_signal": [a / max(b, 1e-12) for a, b in zip(per_scene, signal)],
    }


NOISE_KEYS = ("noise_near_flicker", "noise_elsewhere", "move_signal", "noise_to_signal")


def noise_table(noise: dict[str, dict[str, dict[str, list[float]]]]) -> tuple[str, dict[str, dict[str, dict]]]:
    """Markdown table and summaries of :func:`target_noise` per curiosity space ``{space: {seed: per-scene
    values}}``. Every seed trains on the same scenes (``--scene-seed``), so a scene's value is its mean over the
    seeds, and the interval is the 95% t-interval over scenes (a fixed space, pixels or a frozen encoder, gives the
    same values in every seed)."""
    summary = {
        space: {k: mean_ci(np.mean([v[k] for v in seeds.values()], axis=0)) for k in NOISE_KEYS}
        for space, seeds in noise.items()
    }
    header = ["curiosity space", "seeds", "scenes", "target change, flicker (near)", "elsewhere", "move signal"]
    header.append("noise / signal")
    rows = [
        [space, str(len(noise[space])), str(s["move_signal"]["n"]), *(fmt_ci(s[k]) for k in NOISE_KEYS)]
        for space, s in summary.items()
    ]
    return markdown_table(header, rows), summary


#: The policy whose time next to flicker is compared with every other row's (rliable's probability of improvement,
#: lower is better), stored in the other row's summary as ``"less_flicker"``.
LESS_FLICKER = "PPO + semantic curiosity"


def summarize(raw: dict[str, dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{split: {policy: {metric: mean_ci over seeds, "near_flicker_iqm": iqm_ci, "less_flicker": P(the
    LESS_FLICKER policy spends fewer steps next to flicker than this one)}}}``."""
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for split, pol in raw.items():
        out[split] = {}
        for p, seeds in pol.items():
            s: dict[str, dict] = {m: mean_ci([v[m] for v in seeds.values()]) for m in METRICS}
            s["near_flicker_iqm"] = iqm_ci(_near_flicker(seeds))
            out[split][p] = s
        for ref in pol:
            if LESS_FLICKER in pol and ref != LESS_FLICKER:  # lower is better: P(X < Y) = P(-X > -Y)
                p = probability_of_improvement(-_near_flicker(pol[LESS_FLICKER]), -_near_flicker(pol[ref]))
                out[split][ref]["less_flicker"] = {**p, "policy": LESS_FLICKER}
    return out


def _near_flicker(seeds: dict[str, dict[str, float]]) -> np.ndarray:
    return np.asarray([[seeds[k]["near_flicker"]] for k in sorted(seeds, key=int)], dtype=np.float64)


def table(summary: dict[str, dict[str, dict[str, dict]]], episodes: int) -> str:
    """One markdown table per split."""
    parts = []
    header = [
        "policy",
        "seeds",
        "fraction of steps next to flicker",
        "its IQM",
        "coverage",
        "success",
        "P(semantic curiosity less next to flicker than this row)",
    ]
    for split, rows in summary.items():
        body = []
        for p, s in rows.items():
            iqm = s["near_flicker_iqm"]
            less = s.get("less_flicker")
            cells = [fmt_ci(s["near_flicker"]), fmt_interval(iqm["iqm"], iqm["low"], iqm["high"])]
            cells += [fmt_ci(s["coverage"]), fmt_ci(s["success"])]
            cells.append(fmt_interval(less["p"], less["low"], less["high"], 2) if less else "")
            body.append([p, str(s["near_flicker"]["n"]), *cells])
        parts.append(
            f"**{split} scenes** ({episodes} episodes per policy and seed; mean ± 95% t-interval and IQM "
            "[stratified-bootstrap 95% interval] over seeds)\n\n" + markdown_table(header, body)
        )
    return "\n\n".join(parts)


def figure(summary: dict[str, dict[str, dict[str, dict]]], path: Path) -> Path:
    """Near-flicker fraction and coverage per policy, train and test scenes."""
    fig, axes = new_figure(2, width=4.6, height=3.4)
    policies = list(next(iter(summary.values())))
    short = [p.replace("PPO + ", "+ ").replace(", extrinsic only", " extrinsic") for p in policies]
    for ax, metric, name in zip(axes, ("near_flicker", "coverage"), ("fraction of steps next to flicker", "coverage")):
        series = {split: [summary[split][p][metric] for p in policies] for split in summary}
        bar_chart(ax, short, series, name)
        ax.legend(fontsize=7, title="scenes", title_fontsize=7)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    names = [a for a, _, _ in ARMS]
    cfg, weights, base, t0 = start_rl_study(FlickerConfig, argv, BUDGETS, __doc__.split("\n\n")[0], arms=names)
    arms = [(arm, f) for arm, _, f in ARMS if arm in cfg.arms]
    subruns = [
        FlickerRun(arm_run(cfg, base, cfg.task, arm, {**f, **cfg.rl.budget(False)}, seed).cfg, cfg.episodes, k == 0)
        for seed in range(1, cfg.seeds + 1)
        for k, (arm, f) in enumerate(arms)
    ]
    launch(subruns, cfg, cfg.out)
    raw: dict[str, dict[str, dict[str, dict[str, float]]]] = {split: {} for split in SPLITS}
    seconds: dict[str, list[float]] = {}
    noise: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in subruns:
        arm, seed = run.cfg.exp_name, str(run.cfg.seed)
        label = next(label for a, label, _ in ARMS if a == arm)
        seconds.setdefault(arm, []).append(run_seconds(run.run_dir))
        evaluation = json.loads((run.run_dir / EVAL_FILE).read_text())
        if evaluation["target_noise"] is not None:
            noise.setdefault(run.cfg.curiosity.space, {})[seed] = evaluation["target_noise"]
        for split in SPLITS:
            raw[split].setdefault(label, {})[seed] = evaluation["policy"][split]
        if "random walk" in evaluation:
            for split in SPLITS:
                raw[split].setdefault("random walk", {})[seed] = evaluation["random walk"][split]
    for split in SPLITS:  # the random walk last, as in the tables
        raw[split]["random walk"] = raw[split].pop("random walk")
    summary = summarize(raw)
    noise_text, noise_summary = noise_table(noise)
    wall = time.perf_counter() - t0
    notes = [
        f"task {cfg.task}; encoder {cfg.rl.encoder} ({weights or 'random init'}); every arm trains "
        f"{cfg.rl.total_steps} environment steps (phase 1 only), intrinsic coefficient "
        f"{cfg.rl.intrinsic_coef}; {cfg.seeds} seeds; mean ± 95% t-interval over seeds",
        "per run (training): " + ", ".join(f"{a} {np.nanmean(s):.0f} s" for a, s in seconds.items()),
    ]
    text = table(summary, cfg.episodes) + (
        "\n\n**How loud the flicker is in each curiosity space** (on the training scenes, what each run's final "
        "learner predicts, layer-normed: MSE between flicker variants of a cell, and between neighbouring cells; a "
        "scene's value is its mean over the seeds; mean ± 95% t-interval over the scenes)\n\n" + noise_text
    )
    results = {"summary": summary, "target_noise": noise_summary, "run_seconds": seconds}
    write_outputs(cfg.out, cfg, raw, results, text, wall, notes)
    figure(summary, cfg.out / "flicker.png")
    print(text)
    print(f"flicker: {wall:.0f} s -> {cfg.out}")
    return 0


__all__ = [
    "ARMS",
    "BUDGETS",
    "FlickerConfig",
    "FlickerRun",
    "flicker_episodes",
    "main",
    "noise_table",
    "summarize",
    "target_noise",
]

if __name__ == "__main__":
    sys.exit(main())
