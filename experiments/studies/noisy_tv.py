"""Study 3, the noisy TV: which curiosity spaces does a TV trap, from pixels to the oracle?

    python -m experiments.studies.noisy_tv --budget cpu --out runs/studies/noisy_tv

Every scene of ``ObjectNav-v0`` gets a TV (:mod:`envs.tv`): ``spontaneous`` noise redrawn every step, the same
screen redrawn by a ``remote`` action, an object whose ``colour`` changes every step (the car-colour problem), or an
object whose ``class`` changes every step (the semantic control). An arm is one TV mode x one curiosity space x one
reward: pure curiosity (``--extrinsic-coef 0``, Burda et al. 2019's protocol) or curiosity added to the extrinsic
reward. Every policy observes the same thing, the oracle window (ground truth, with the TV's screen visible), so the
arms differ only in the space the forward model (or RND) works in:

- ``pixels``: the pooled pixel crop; ``random``: a random-init encoder (Burda et al. 2019); ``inverse``: ICM
  (Pathak et al. 2017) on the laptop encoder's features; ``rnd``: RND on them;
- ``laptop``: the laptop encoder's features (``--rl.encoder-weights``); ``supervised``: the same network trained
  with labels (``--supervised-weights``, the encoder-recipe study's reference);
- ``hog``: histograms of oriented gradients (:mod:`envs.hog`); ``oracle``: ground truth (:mod:`envs.oracle`).

Each run's own evaluation (``experiments.two_phase``: the policy and the random walk on the same episodes, on the
training scenes, where curiosity shaped the policy, and on held-out scenes) gives per episode the time-in-TV (the
fraction of steps with the TV inside the observed window), the remote presses with the TV in view, coverage and
success; a seed's value is the mean over its episodes, and the tables give the mean and 95% t-interval over seeds,
the ratio to the random walk of the same seed and episodes, and rliable's probability that a space spends less
time at the TV than pixel curiosity.

**The offline probe** (``--probe``, before any RL): per TV mode and space, the space's learner (the same one the
trainer builds) trains on a fixed set of random-walk transitions of the training scenes until its error stops
falling, and its error on held-out random-walk transitions is split into transitions that reach the TV's view and
the others. Its ratio ranks the spaces before any agent runs; Spearman's correlation with the RL ranking is reported.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.studies.config import SMOKE_RL, RLStudyConfig, arm_run, start_rl_study, step_budget, study_rl
from experiments.studies.figures import bar_chart, new_figure, save_figure
from experiments.studies.launch import launch
from experiments.studies.outputs import markdown_table, save_json, write_outputs
from experiments.studies.two_phase_runs import TwoPhaseRun, eval_summary, run_seconds, torch_threads
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.evaluation import RANDOM_WALK
from techniques.rl_navigation.reference_policies import BLIND_WALK
from techniques.rl_navigation.statistics import fmt_ci, fmt_interval, mean_ci, probability_of_improvement

logger = logging.getLogger("experiments.studies.noisy_tv")

#: (space, table label, ``TwoPhaseConfig`` fields). ``supervised`` also takes ``--supervised-weights``.
SPACES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("pixels", "pixels", {"curiosity.space": "pixels"}),
    ("random", "random encoder", {"curiosity.space": "random"}),
    ("inverse", "ICM (inverse dynamics)", {"curiosity.space": "inverse"}),
    ("rnd", "RND", {"curiosity.space": "rnd"}),
    ("laptop", "laptop encoder", {"curiosity.space": "semantic"}),
    ("supervised", "supervised encoder", {"curiosity.space": "semantic"}),
    ("hog", "HOG", {"curiosity.space": "hog"}),
    ("oracle", "oracle", {"curiosity.space": "oracle"}),
)
#: (reward, label, fields): pure curiosity, or curiosity added to the extrinsic reward (``--rl.intrinsic-coef``).
REWARDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("curiosity", "pure curiosity", {"extrinsic_coef": 0.0, "intrinsic_coef": 1.0}),
    ("extrinsic", "extrinsic + curiosity", {"extrinsic_coef": 1.0}),
)
TV_MODES: tuple[str, ...] = ("spontaneous", "remote", "colour", "class")
METRICS: tuple[str, ...] = ("tv_fraction", "remote_presses", "coverage", "success")
SPLITS: tuple[str, ...] = ("train", "test")
#: The reference of rliable's probability of improvement in the tables (lower time-in-TV is better).
REFERENCE_SPACE = "pixels"
PROBE_FILE = "probe.json"


@dataclass
class NoisyTVConfig(RLStudyConfig):
    """Noisy-TV study: time-in-TV of pure curiosity (and with the extrinsic reward) across curiosity spaces."""

    out: Path = Path("runs/studies/noisy_tv")
    """output folder"""
    task: str = "ObjectNav-v0"
    """navigation task (the TV is added to it)"""
    tvs: tuple[str, ...] = TV_MODES
    """TV modes (spontaneous, remote, colour, class)"""
    spaces: tuple[str, ...] = ("pixels", "random", "inverse", "rnd", "laptop", "supervised", "hog", "oracle")
    """curiosity spaces (pixels, random, inverse, rnd, laptop, supervised, hog, oracle)"""
    extrinsic: tuple[str, ...] = ("spontaneous:pixels", "spontaneous:laptop", "spontaneous:oracle")
    """'tv:space' pairs of the study also run with the extrinsic reward (curiosity added at --rl.intrinsic-coef);
    every pair runs with pure curiosity"""
    grid: tuple[str, ...] = ()
    """restrict the arms to these 'tv:space' pairs (e.g. spontaneous:pixels remote:oracle); empty: every pair of
    --tvs x --spaces"""
    supervised_weights: str | None = None
    """checkpoint of the supervised reference encoder (the --rl.encoder network trained with labels: the encoder
    recipe study's supervised_laptop__s0/backbone.pth); required by the 'supervised' space"""
    probe: bool = True
    """run the offline probe of every (TV, space) before the RL runs"""
    probe_steps: int = 512
    """probe: random-walk steps per agent (16 agents) for training, a quarter as many held out"""
    probe_updates: int = 25
    """probe: learner updates (each --curiosity.forward-epochs passes) over the fixed training transitions"""
    pool_sizes: tuple[int, ...] = (4, 16, 64, 256)
    """probe the spontaneous TV in pixel space with these frame pools too (can a forward model learn a small pool
    away? empty: skip)"""
    seeds: int = 10
    rl: TwoPhaseConfig = field(
        default_factory=lambda: study_rl(observation="oracle", n_train_scenes=16, phase1_steps=100_000, phase2_steps=0)
    )


BUDGETS = {
    "smoke": {
        "seeds": 2,
        "tvs": ("spontaneous", "remote"),
        "spaces": ("pixels", "oracle", "hog"),
        "probe_steps": 16,
        "probe_updates": 2,
        "pool_sizes": (2, 4),
        "extrinsic": ("remote:oracle",),
        **SMOKE_RL,
        "rl.phase2_steps": 0,
        "rl.observation": "oracle",
    },
    "cpu": {},
}


def arm_fields(cfg: NoisyTVConfig, tv: str, space: str, reward: str) -> dict[str, Any]:
    """The ``TwoPhaseConfig`` fields of one arm: the TV, the curiosity space, the reward and the step budget."""
    fields = {"tv": tv, "curiosity.forward_epochs": FORWARD_EPOCHS, **dict(SPACES_BY_NAME[space][1])}
    if space == "supervised":
        fields["curiosity.encoder"] = cfg.rl.encoder
        fields["curiosity.encoder_weights"] = cfg.supervised_weights
    return {**fields, **dict(REWARDS_BY_NAME[reward][1]), **step_budget(cfg.rl, False)}


#: Forward-model passes over each rollout (the trainer's default is 2): enough that the error away from the TV keeps
#: falling while the TV's stays at its noise floor (the probe's curves, docs/results.md).
FORWARD_EPOCHS = 4
SPACES_BY_NAME = {name: (label, fields) for name, label, fields in SPACES}
REWARDS_BY_NAME = {name: (label, fields) for name, label, fields in REWARDS}


def arms(cfg: NoisyTVConfig) -> list[tuple[str, str]]:
    """The (TV, space) pairs of the study, in table order (:data:`TV_MODES`, then :data:`SPACES`)."""
    pairs = [(tv, space) for tv in TV_MODES if tv in cfg.tvs for space in SPACES_BY_NAME if space in cfg.spaces]
    if cfg.grid:
        wanted = {tuple(p.split(":", 1)) for p in cfg.grid}
        pairs = [p for p in pairs if p in wanted]
    return pairs


def check_study(cfg: NoisyTVConfig) -> None:
    """Reject unknown names and a missing supervised checkpoint before any run starts."""
    for name, values, allowed in (
        ("--tvs", cfg.tvs, TV_MODES),
        ("--spaces", cfg.spaces, tuple(SPACES_BY_NAME)),
    ):
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"{name}: unknown {unknown}; choose from {', '.join(allowed)}")
    for name, values in (("--grid", cfg.grid), ("--extrinsic", cfg.extrinsic)):
        for pair in values:
            tv, _, space = pair.partition(":")
            if tv not in TV_MODES or space not in SPACES_BY_NAME:
                raise ValueError(f"{name}: {pair!r} is not 'tv:space' with a TV of {TV_MODES} and a space of --spaces")
    if "supervised" in cfg.spaces and not cfg.supervised_weights:
        raise ValueError(
            "the 'supervised' space needs --supervised-weights (train it with python -m "
            "experiments.studies.encoder_recipe --settings laptop --seeds 0: "
            "runs/<...>/supervised_laptop__s0/backbone.pth), or drop it from --spaces"
        )
    if not arms(cfg):
        raise ValueError("--grid leaves no arm of --tvs x --spaces")


# ------------------------------------------------------------------------------------------------ offline probe
def probe(run_cfg: Any, steps: int, updates: int, n_agents: int = 16) -> dict[str, Any]:
    """The offline probe of one arm's curiosity space (see the module docstring).

    Returns ``{"tv": [...], "elsewhere": [...]}`` (the held-out mean error after each update, at the TV and away from
    it), ``"ratio"`` (their final ratio) and ``"floor"``: the noise floor at the TV, the mean squared deviation of the
    layer-normed prediction targets over the TV's frames (what no learner can predict), on the error's scale for the
    forward-model spaces.
    """
    import torch
    import torch.nn.functional as F

    from encoders.utils.config import replace_nested
    from techniques.rl_navigation.trainer import TwoPhaseTrainer

    cfg = replace_nested(run_cfg, {"n_envs": n_agents, "eval_episodes": 0, "checkpoint_every": 10**9})
    with tempfile.TemporaryDirectory() as scratch:
        trainer = TwoPhaseTrainer(cfg, scratch)
        try:
            recorder, learner = trainer.recorder, trainer.curiosity.learner
            rng = np.random.default_rng(cfg.seed)
            n_actions = recorder.action_space.n

            def collect(n_steps: int):
                recorder.reset()
                recorder.start_rollout(n_steps)
                for _ in range(n_steps):
                    recorder.step(rng.integers(n_actions, size=recorder.num_envs))
                return recorder.batch()

            train, held_out = collect(steps), collect(max(steps // 4, 1))
            tv_view = trainer.env.core.tv_view
            ns = held_out.next_states
            at_tv = tv_view[ns.scene, ns.row, ns.col]
            curve: dict[str, list[float]] = {"tv": [], "elsewhere": []}
            update_rng = np.random.default_rng(cfg.seed + 1)
            for _ in range(updates):
                learner.update(train.states, train.actions, train.next_states, update_rng)
                errors = learner.errors(held_out.states, held_out.actions, held_out.next_states)
                curve["tv"].append(float(errors[at_tv].mean()) if at_tv.any() else float("nan"))
                curve["elsewhere"].append(float(errors[~at_tv].mean()) if (~at_tv).any() else float("nan"))
            # the noise floor: the targets of the TV states reached, over every frame of the pool
            reached = ns.reshape(-1)[at_tv.reshape(-1)][:256]
            floor = float("nan")
            if len(reached):
                n_frames = trainer.env.world.n_variants
                states = reached[np.repeat(np.arange(len(reached)), n_frames)]
                states.variant = np.tile(np.arange(n_frames), len(reached))
                with torch.no_grad():
                    targets = learner.prediction_targets(states).float().cpu()
                targets = F.layer_norm(targets, targets.shape[-1:]).reshape(len(reached), n_frames, -1)
                floor = float(((targets - targets.mean(1, keepdim=True)) ** 2).mean())
        finally:
            trainer.close()
    last = {k: v[-1] for k, v in curve.items()}
    return {**curve, "ratio": last["tv"] / max(last["elsewhere"], 1e-12), "floor": floor}


@dataclass
class ProbeRun:
    """The offline probe of one (TV, space) into ``<out>/probe/<tv>__<space>.json`` (reused when present)."""

    run: TwoPhaseRun
    path: Path
    steps: int
    updates: int

    @property
    def run_dir(self) -> Path:
        return self.path

    def check(self) -> None:
        self.run.check()

    def done(self) -> bool:
        return self.path.exists()

    def __call__(self) -> None:
        if self.done():
            return
        with torch_threads(self.run.cfg.torch_threads):
            save_json(probe(self.run.cfg, self.steps, self.updates), self.path)


# ------------------------------------------------------------------------------------------------ summaries
def seed_values(run_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{split: {"policy" | reference: {metric: mean over the episodes}}}`` of a finished run (:data:`REFERENCES`:
    the random walk and the blind persistent walk, on the policy's episodes); the policy's
    entries also hold ``learner_tv_ratio``: the trained learner's mean intrinsic reward (its error) on transitions that
    reach the TV's view over the others', on the run's own rollouts of the last quarter of training
    (``tv/intrinsic_tv_ratio``)."""
    from experiments.studies.curves import read_scalars

    ratios = read_scalars(run_dir, [LEARNER_TAG]).get(LEARNER_TAG, (np.zeros(0), np.zeros(0)))[1]
    learner = float(np.mean(ratios[-max(len(ratios) // 4, 1) :])) if len(ratios) else float("nan")
    out = {}
    for split in SPLITS:
        summary = eval_summary(run_dir, split)
        out[split] = {
            "policy": {**{m: summary["final"][m]["mean"] for m in METRICS}, "learner_tv_ratio": learner},
            **{ref: {m: summary[ref][m]["mean"] for m in METRICS} for ref in REFERENCES},
        }
    return out


#: The reference policies of the tables, run on the same episodes as each policy (the oracle is a curiosity space).
REFERENCES: tuple[str, ...] = (RANDOM_WALK, BLIND_WALK)


#: The per-rollout ratio of the intrinsic reward at the TV to elsewhere (techniques.rl_navigation.curiosity.tv_split).
LEARNER_TAG = "tv/intrinsic_tv_ratio"


def summarize(raw: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per ``"<tv>/<reward>/<split>"`` and row (space label, then the reference policies): every metric's mean and 95%
    t-interval over seeds, the per-seed ratio of time-in-TV to the random walk's, and P(this row spends less time at
    the TV than pixel curiosity) (rliable, over seeds; lower is better)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, rows in raw.items():
        table: dict[str, dict[str, Any]] = {}
        reference = rows.get(SPACES_BY_NAME[REFERENCE_SPACE][0])
        references: dict[str, dict[str, dict[str, float]]] = {ref: {} for ref in REFERENCES}
        for label, seeds in rows.items():
            ordered = sorted(seeds, key=int)
            s: dict[str, Any] = {m: mean_ci([seeds[k]["policy"][m] for k in ordered]) for m in METRICS}
            s["learner_tv_ratio"] = mean_ci([seeds[k]["policy"].get("learner_tv_ratio", np.nan) for k in ordered])
            s["tv_ratio"] = mean_ci(
                [seeds[k]["policy"]["tv_fraction"] / max(seeds[k]["random walk"]["tv_fraction"], 1e-9) for k in ordered]
            )
            if reference is not None and label != SPACES_BY_NAME[REFERENCE_SPACE][0]:
                mine = np.asarray([[-seeds[k]["policy"]["tv_fraction"]] for k in ordered])
                ref = np.asarray([[-reference[k]["policy"]["tv_fraction"]] for k in sorted(reference, key=int)])
                s["less_tv_than_pixels"] = probability_of_improvement(mine, ref)
            table[label] = s
            for ref in REFERENCES:
                references[ref].update({k: seeds[k][ref] for k in ordered if ref in seeds[k]})
        for ref, per_seed in references.items():
            if per_seed:
                ordered = sorted(per_seed, key=int)
                row = {m: mean_ci([per_seed[k][m] for k in ordered]) for m in METRICS}
                walk = references[RANDOM_WALK]
                row["tv_ratio"] = mean_ci(
                    [per_seed[k]["tv_fraction"] / max(walk[k]["tv_fraction"], 1e-9) for k in ordered]
                )
                table[ref] = row
        out[key] = table
    return out


def tables(summary: dict[str, dict[str, dict[str, Any]]], probes: dict[str, dict[str, Any]]) -> str:
    """One markdown table per TV mode, reward and split; the probe table; Spearman's correlation of the rankings."""
    parts = []
    header = ["curiosity space", "seeds", "time in TV", "÷ random walk", "P(less time in TV than pixels)"]
    header += ["remote presses", "coverage", "success", "learner: error at TV ÷ elsewhere"]
    for key, rows in summary.items():
        tv, reward, split = key.split("/")
        body = []
        for label, s in rows.items():
            less = s.get("less_tv_than_pixels")
            body.append(
                [
                    label,
                    str(s["tv_fraction"]["n"]),
                    fmt_ci(s["tv_fraction"]),
                    fmt_ci(s["tv_ratio"], 2),
                    fmt_interval(less["p"], less["low"], less["high"], 2) if less else "",
                    fmt_ci(s["remote_presses"], 2) if tv == "remote" else "",
                    fmt_ci(s["coverage"]),
                    fmt_ci(s["success"]),
                    fmt_ci(s["learner_tv_ratio"], 2) if "learner_tv_ratio" in s else "",
                ]
            )
        parts.append(f"**TV `{tv}`, {REWARDS_BY_NAME[reward][0]}, {split} scenes**\n\n" + markdown_table(header, body))
    if probes:
        body = [
            [
                tv,
                SPACES_BY_NAME[space][0],
                *(f"{p[k][-1]:.4f}" for k in ("tv", "elsewhere")),
                f"{p['ratio']:.2f}",
                f"{p['floor']:.4f}",
            ]
            for (tv, space), p in probes.items()
        ]
        parts.append(
            "**Offline probe** (random-walk transitions of the training scenes; the learner trained to convergence; "
            "held-out error)\n\n"
            + markdown_table(["TV", "space", "error at TV", "elsewhere", "ratio", "noise floor at TV"], body)
        )
        parts.extend(rank_correlations(summary, probes))
    return "\n\n".join(parts)


def pool_table(pools: dict[int, dict[str, Any]]) -> str:
    """The probe of the spontaneous TV in pixel space per frame-pool size (empty without pools)."""
    if not pools:
        return ""
    body = [
        [str(n), f"{p['floor']:.4f}", f"{p['tv'][-1]:.4f}", f"{p['elsewhere'][-1]:.4f}", f"{p['ratio']:.2f}"]
        for n, p in sorted(pools.items())
    ]
    return (
        "\n\n**Frame pool size** (the offline probe of the spontaneous TV in pixel space: can the forward model learn "
        "a pool away?)\n\n"
        + markdown_table(["frames per scene", "noise floor at TV", "error at TV", "elsewhere", "ratio"], body)
    )


def rank_correlations(summary: dict[str, dict[str, dict[str, Any]]], probes: dict[tuple[str, str], Any]) -> list[str]:
    """Spearman's correlation between the probe's ratio and the RL time-in-TV (pure curiosity, training scenes), per
    TV mode with at least 3 spaces."""
    from scipy.stats import spearmanr

    lines = []
    for tv in dict.fromkeys(tv for tv, _ in probes):
        rows = summary.get(f"{tv}/curiosity/train", {})
        pairs = [
            (p["ratio"], rows[SPACES_BY_NAME[space][0]]["tv_fraction"]["mean"])
            for (t, space), p in probes.items()
            if t == tv and SPACES_BY_NAME[space][0] in rows
        ]
        if len(pairs) >= 3:
            ratios, times = zip(*pairs)
            head = f"Spearman correlation, probe ratio vs RL time-in-TV (`{tv}`, {len(pairs)} spaces): "
            if len(set(ratios)) == 1 or len(set(times)) == 1:
                lines.append(head + "undefined (one of the rankings is constant)")
                continue
            rho, pvalue = spearmanr(ratios, times)
            lines.append(head + f"{rho:.2f} (p = {pvalue:.3f})")
    return lines


def figure(summary: dict[str, dict[str, dict[str, Any]]], path: Path, split: str = "train") -> Path | None:
    """Pure curiosity, one group of bars per TV mode: time in TV per space and the random walk (``split`` scenes), and
    the trained learner's error at the TV over elsewhere (the mechanism; 1: the TV is no louder than the rest)."""
    keys = [k for k in summary if k.endswith(f"/curiosity/{split}")]
    if not keys:
        return None
    fig, axes = new_figure(2, width=max(4.5, 1.0 * len(keys) * 2), height=3.6)
    labels = list(dict.fromkeys(label for k in keys for label in summary[k]))
    missing = {"mean": np.nan, "ci95": 0.0}
    groups = [k.split("/")[0] for k in keys]
    for ax, metric, name in (
        (axes[0], "tv_fraction", f"time in TV ({split} scenes)"),
        (axes[1], "learner_tv_ratio", "learner: error at TV ÷ elsewhere"),
    ):
        rows = labels if metric == "tv_fraction" else [label for label in labels if label not in REFERENCES]
        series = {label: [summary[k].get(label, {}).get(metric, missing) for k in keys] for label in rows}
        bar_chart(ax, groups, series, name)
        if metric == "learner_tv_ratio":  # ratios from below 1 to tens: a log scale, 1 marked
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        else:
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


def probe_figure(probes: dict[tuple[str, str], dict[str, Any]], path: Path, tv: str = "spontaneous") -> Path | None:
    """The offline probe's error curves of one TV mode, one panel per space: the held-out error at the TV and elsewhere
    after each learner update, and elsewhere + the noise floor (where a noise-limited learner's TV error settles)."""
    spaces = [space for t, space in probes if t == tv]
    if not spaces:
        return None
    fig, axes = new_figure(len(spaces), width=2.4, height=2.4)
    for ax, space in zip(axes, spaces):
        p = probes[(tv, space)]
        updates = np.arange(1, len(p["tv"]) + 1)
        ax.plot(updates, p["tv"], label="at the TV", lw=1.5)
        ax.plot(updates, p["elsewhere"], label="elsewhere", lw=1.5)
        ax.plot(updates, np.asarray(p["elsewhere"]) + p["floor"], label="elsewhere + floor", lw=1, ls="--")
        ax.set_title(SPACES_BY_NAME[space][0], fontsize=8)
        ax.set_xlabel("learner updates", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel(f"held-out error (`{tv}` TV)", fontsize=7)
    axes[0].legend(fontsize=6)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, weights, t0 = start_rl_study(NoisyTVConfig, argv, BUDGETS, __doc__.split("\n\n")[0], check=check_study)
    pairs = arms(cfg)
    rewarded = [(tv, space, "curiosity") for tv, space in pairs]
    rewarded += [(tv, space, "extrinsic") for tv, space in pairs if f"{tv}:{space}" in cfg.extrinsic]
    subruns = [
        arm_run(cfg, cfg.task, f"{tv}__{space}__{reward}", arm_fields(cfg, tv, space, reward), seed)
        for tv, space, reward in rewarded
        for seed in range(1, cfg.seeds + 1)
    ]

    def probe_run(name: str, fields: dict[str, Any], file: str) -> ProbeRun:
        return ProbeRun(arm_run(cfg, cfg.task, name, fields, 1), cfg.out / "probe" / file, cfg.probe_steps,
                        cfg.probe_updates)  # fmt: skip

    spontaneous_pixels = arm_fields(cfg, "spontaneous", "pixels", "curiosity")
    probe_runs = {
        (tv, space): probe_run(f"probe_{tv}__{space}", arm_fields(cfg, tv, space, "curiosity"), f"{tv}__{space}.json")
        for tv, space in (pairs if cfg.probe else [])
    }
    pool_runs = {
        n: probe_run(f"pool{n}", {**spontaneous_pixels, "tv_frames": n}, f"pool{n}__pixels.json")
        for n in (cfg.pool_sizes if cfg.probe else ())
    }
    launch([*probe_runs.values(), *pool_runs.values(), *subruns], cfg, cfg.out)
    probes = {key: json.loads(run.path.read_text()) for key, run in probe_runs.items()}
    pools = {n: json.loads(run.path.read_text()) for n, run in pool_runs.items()}
    raw: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, list[float]] = {}
    for run in subruns:
        tv, space, reward = run.cfg.exp_name.split("__")
        values = seed_values(run.run_dir)
        seconds.setdefault(space, []).append(run_seconds(run.run_dir))
        for split in SPLITS:
            raw.setdefault(f"{tv}/{reward}/{split}", {}).setdefault(SPACES_BY_NAME[space][0], {})[str(run.cfg.seed)] = (
                values[split]
            )
    summary = summarize(raw)
    wall = time.perf_counter() - t0
    notes = [
        f"task {cfg.task} with a TV; the policy observes {cfg.rl.rules.observation}; curiosity encoders: laptop "
        f"{weights or 'random init'}, supervised {cfg.supervised_weights or '-'}; every arm trains "
        f"{cfg.rl.phase1_steps + cfg.rl.phase2_steps} environment steps on {cfg.rl.n_train_scenes} training scenes, "
        "forward epochs "
        f"{FORWARD_EPOCHS}; {cfg.seeds} seeds; mean ± 95% t-interval over seeds",
        "per run (training + evaluation): " + ", ".join(f"{a} {np.nanmean(s):.0f} s" for a, s in seconds.items()),
    ]
    text = tables(summary, probes) + pool_table(pools)
    results = {
        "summary": summary,
        "probe": {f"{tv}/{space}": p for (tv, space), p in probes.items()},
        "pool_sizes": {str(n): p for n, p in pools.items()},
        "run_seconds": seconds,
    }
    write_outputs(cfg.out, cfg, raw, results, text, wall, notes)
    for split in SPLITS:
        figure(summary, cfg.out / f"noisy_tv_{split}.png", split)
    probe_figure(probes, cfg.out / "probe_spontaneous.png")
    print(text)
    print(f"noisy_tv: {wall:.0f} s -> {cfg.out}")
    return 0


__all__ = [
    "BUDGETS",
    "REWARDS",
    "SPACES",
    "TV_MODES",
    "NoisyTVConfig",
    "ProbeRun",
    "arm_fields",
    "arms",
    "main",
    "probe",
    "seed_values",
    "summarize",
]

if __name__ == "__main__":
    sys.exit(main())
