"""Policy evaluation on held-out scenes: metrics with 95% confidence intervals, reference policies (a random
walk, a blind persistent walk and recognition + persistent walk), the paired difference of each policy's success to
the blind walk's, and a PNG grid of trajectories.

Protocol: ``n_episodes`` are split evenly over the agents of one :class:`envs.vec_env.ImageNavVecEnv` (agent ``i``
runs a fixed quota of episodes, so short episodes are not over-represented); agent ``i``'s ``k``-th episode is
drawn from its own generator (seed ``seed + i``), so every policy evaluated with the same seed faces the same
scenes, goals and starts. Results list the episodes by agent, then by the agent's episode number (not in the order
they finished, which depends on the policy), so the ``j``-th episode of two policies run with the same seed, number
of agents and episodes is the same episode: :func:`paired_differences` pairs them. Policies act stochastically by
default: a memoryless reactive policy that is made deterministic can loop forever between two cells, which says
little about what it learned.

Reference policies (:mod:`techniques.rl_navigation.reference_policies`): the random walk (uniform actions), the
blind persistent walk (keeps its heading with probability 0.8, turns at walls; never STOPs) and recognition +
persistent walk (greedy to the goal once a goal cell is in its window, STOP within the success radius; the blind
walk otherwise). The last two read the agent's cell and heading from the environment, not the observations.

Metrics per episode (from the environment's final ``info``): success, success within 0, 1 and 2 cells
(habitat-lab's success at those distances; with STOP, STOP called there), SPL and soft-SPL (Anderson et al.
2018), coverage (fraction of cells visited), path length (cells moved), the shortest-path distance to the goal
at the end, time-in-TV (the fraction of steps with the TV in view, :mod:`envs.tv`), remote presses with the TV in
view, and the return. Summaries report the mean and the
half-width of its 95% t-interval (:func:`techniques.rl_navigation.statistics.mean_ci`).

Policies with memory (``--policy lstm``, sb3-contrib RecurrentPPO) get their LSTM state carried from step to step
and reset at episode starts (:func:`policy_actor`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from envs.stepping import SUCCESS_DISTANCES
from techniques.rl_navigation.reference_policies import (
    BLIND_WALK,
    RECOGNITION_WALK,
    persistent_walk_actor,
    recognition_walk_actor,
)
from techniques.rl_navigation.statistics import fmt_ci, mean_ci

logger = logging.getLogger(__name__)

#: Reported metrics: (key in results, display name).
METRICS: tuple[tuple[str, str], ...] = (
    ("success", "success"),
    *((f"success_within_{k}", f"success@{k}") for k in SUCCESS_DISTANCES),
    ("spl", "SPL"),
    ("soft_spl", "soft-SPL"),
    ("coverage", "coverage"),
    ("path_length", "path length"),
    ("distance_to_goal", "final distance"),
    ("tv_fraction", "time in TV"),
    ("remote_presses", "remote presses"),
    ("episode_return", "return"),
)
#: Result fields read from the final ``info`` under another key.
_INFO_KEYS = {"success": "is_success"}

#: ``act(observations {key: (N, ...)}, episode_starts (N,) bool) -> actions (N,)``.
Actor = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]

RANDOM_WALK = "random walk"
#: Table labels of the reference policies, in the order they are evaluated (after the learned policies).
REFERENCE_LABELS: tuple[str, ...] = (RANDOM_WALK, BLIND_WALK, RECOGNITION_WALK)
#: Key of the paired differences in the JSON report, and the column of the printed table.
PAIRED_KEY = "success_minus_blind_walk"
PAIRED_COLUMN = "success − blind walk (paired)"


@dataclass
class EpisodeResults:
    """Per-episode metrics of an evaluation (arrays of length ``n``) and a few trajectory frames."""

    success: np.ndarray
    success_within_0: np.ndarray
    success_within_1: np.ndarray
    success_within_2: np.ndarray
    spl: np.ndarray
    soft_spl: np.ndarray
    coverage: np.ndarray
    path_length: np.ndarray
    distance_to_goal: np.ndarray
    tv_fraction: np.ndarray
    remote_presses: np.ndarray
    episode_return: np.ndarray
    length: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)
    agent: np.ndarray | None = None
    """``(n,)`` the agent that ran each episode (``None`` when unknown)"""
    episode: np.ndarray | None = None
    """``(n,)`` the episode's number among its agent's episodes (``None`` when unknown)"""

    def __len__(self) -> int:
        return len(self.success)


def run_episodes(env: Any, act: Actor, n_episodes: int, max_frames: int = 16) -> EpisodeResults:
    """Run ``n_episodes`` episodes of ``act`` in ``env`` (see the module docstring for the protocol); results are
    ordered by agent, then by the agent's episode number (``results.agent``, ``results.episode``).

    Args:
        env: an :class:`envs.vec_env.ImageNavVecEnv` (seed it first with ``env.seed(seed)``).
        act: an :data:`Actor`.
        n_episodes: total episodes (``>= 1``).
        max_frames: rendered final frames of the first finished episodes to keep.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    n = env.num_envs
    quota = np.full(n, n_episodes // n) + (np.arange(n) < n_episodes % n)
    done_count = np.zeros(n, dtype=np.int64)
    info_metrics = [k for k, _ in METRICS if k != "episode_return"]
    rows: dict[str, list[float]] = {k: [] for k in (*info_metrics, "episode_return", "length")}
    frames: list[np.ndarray] = []
    agents: list[int] = []
    numbers: list[int] = []
    obs = env.reset()
    starts = np.ones(n, dtype=bool)
    while (done_count < quota).any():
        obs, _, dones, infos = env.step(act(obs, starts))
        starts = np.asarray(dones, dtype=bool)
        for i in np.flatnonzero(dones):
            if done_count[i] >= quota[i]:
                continue
            agents.append(int(i))
            numbers.append(int(done_count[i]))
            done_count[i] += 1
            info = infos[i]
            for key in info_metrics:
                rows[key].append(float(info[_INFO_KEYS.get(key, key)]))
            rows["episode_return"].append(float(info["episode"]["r"]))
            rows["length"].append(float(info["episode"]["l"]))
            if len(frames) < max_frames:
                frame = env.render_agent(int(i), "last")
                if frame is not None:
                    frames.append(frame)
    order = np.lexsort((numbers, agents))  # by agent, then episode number: the same order for every policy
    columns = {k: np.asarray(v, dtype=np.float64)[order] for k, v in rows.items()}
    agent, episode = np.asarray(agents, dtype=np.int64)[order], np.asarray(numbers, dtype=np.int64)[order]
    return EpisodeResults(**columns, frames=frames, agent=agent, episode=episode)


def policy_actor(model: Any, deterministic: bool = False) -> Actor:
    """Actions of an SB3 model (``model.predict``); a recurrent model's state is carried between calls and reset
    where ``episode_starts``."""
    state: Any = None

    def act(obs: dict[str, np.ndarray], episode_starts: np.ndarray) -> np.ndarray:
        nonlocal state
        actions, state = model.predict(obs, state=state, episode_start=episode_starts, deterministic=deterministic)
        return np.asarray(actions).reshape(-1)

    return act


def load_policy(path: str | os.PathLike, policy: str = "mlp", device: str = "cpu") -> Any:
    """An SB3 model saved by the trainer: PPO (``policy="mlp"``) or sb3-contrib RecurrentPPO (``"lstm"``); a damaged
    file is a :class:`~encoders.utils.io.CheckpointError` that names it."""
    from techniques.rl_navigation.checkpointing import check_policy_file

    path = check_policy_file(path)
    if policy == "lstm":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO.load(str(path), device=device)
    from stable_baselines3 import PPO

    return PPO.load(str(path), device=device)


def random_actor(n_actions: int, n_envs: int, seed: int = 0) -> Actor:
    """Uniformly random actions: the random-walk baseline."""
    rng = np.random.default_rng(seed)
    return lambda obs, episode_starts: rng.integers(0, n_actions, size=n_envs)


def reference_actors(env: Any, seed: int = 0, keep: float = 0.8) -> dict[str, Actor]:
    """``{label: actor}`` of the reference policies (:data:`REFERENCE_LABELS`) in ``env``, each with its own
    generator seeded ``seed``; ``keep`` is the walks' probability of keeping their heading."""
    return {
        RANDOM_WALK: random_actor(env.action_space.n, env.num_envs, seed),
        BLIND_WALK: persistent_walk_actor(env, keep, seed),
        RECOGNITION_WALK: recognition_walk_actor(env, keep, seed),
    }


def paired_differences(
    results: dict[str, EpisodeResults], reference: str = BLIND_WALK, metric: str = "success"
) -> dict[str, dict[str, float]]:
    """``{label: mean_ci(metric - reference's metric)}`` for every policy but ``reference``, paired episode by episode
    (``{}`` without a ``reference`` row).

    The ``j``-th episodes of policies run with the same seed, agents and episodes are the same episode (see the
    module docstring); a ``ValueError`` when two results list different episodes (their ``agent`` / ``episode``).
    """
    if reference not in results:
        return {}
    ref = results[reference]
    out: dict[str, dict[str, float]] = {}
    for label, r in results.items():
        if label == reference:
            continue
        same = len(r) == len(ref)
        if same and r.agent is not None and ref.agent is not None:
            same = np.array_equal(r.agent, ref.agent) and np.array_equal(r.episode, ref.episode)
        if not same:
            raise ValueError(f"{label!r} and {reference!r} ran different episodes; they cannot be paired")
        out[label] = mean_ci(getattr(r, metric) - getattr(ref, metric))
    return out


def summarize(results: EpisodeResults) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "ci95", "n", "std"}}``: the mean over episodes and its 95% t-interval half-width."""
    return {key: mean_ci(getattr(results, key)) for key, _ in METRICS}


def episode_table(results: dict[str, EpisodeResults]) -> dict[str, dict[str, list[float]]]:
    """Per-episode values ``{policy: {metric: [...]}}`` (for aggregation over seeds, e.g. with rliable)."""
    return {label: {key: getattr(r, key).tolist() for key, _ in METRICS} for label, r in results.items()}


def format_table(
    summaries: dict[str, dict[str, dict[str, float]]],
    metrics: Sequence[str] | None = None,
    paired: dict[str, dict[str, float]] | None = None,
) -> str:
    """A markdown table: one row per evaluated policy, ``mean ± ci95`` per metric, and with ``paired``
    (:func:`paired_differences`) a last column, each policy's success minus the blind walk's, paired by episode."""
    keys = [k for k, _ in METRICS if metrics is None or k in metrics]
    names = dict(METRICS)
    extra = [PAIRED_COLUMN] if paired else []
    header = "| policy | episodes | " + " | ".join([*(names[k] for k in keys), *extra]) + " |"
    lines = [header, "|" + "---|" * (len(keys) + len(extra) + 2)]
    for policy, summary in summaries.items():
        n = next(iter(summary.values()))["n"]
        cells = [fmt_ci(summary[k]) for k in keys]
        if paired:
            cells.append(fmt_ci(paired[policy]) if policy in paired else "")
        lines.append(f"| {policy} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def trajectory_grid(frames: Sequence[np.ndarray], ncols: int = 4, pad: int = 4) -> np.ndarray:
    """Tile RGB frames ``(H, W, 3)`` (resized to the first one's size) into one ``uint8`` image with white gaps."""
    if not frames:
        raise ValueError("no frames to tile")
    h, w = frames[0].shape[:2]
    ncols = max(1, min(ncols, len(frames)))
    nrows = -(-len(frames) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k, frame in enumerate(frames):
        if frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = frame[..., :3]
    return grid


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB ``uint8`` image as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def write_report(
    results: dict[str, EpisodeResults], out_dir: str | os.PathLike, split: str, meta: dict[str, Any]
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, float]], list[Path]]:
    """Summarise ``results`` and write them to ``out_dir``: ``summary_<split>.json`` (``meta``, ``"results"``: the
    summaries, :data:`PAIRED_KEY`: :func:`paired_differences`), ``summary_<split>.txt`` (the table) and
    ``trajectories_<split>.png`` (the first 8 episodes of every learned policy). Returns the summaries, the paired
    differences and the paths written."""
    from encoders.utils.io import atomic_write_text

    out_dir = Path(out_dir)
    summaries = {label: summarize(r) for label, r in results.items()}
    paired = paired_differences(results)
    data = {**meta, "results": summaries, **({PAIRED_KEY: paired} if paired else {})}
    paths = [
        atomic_write_text(json.dumps(data, indent=2) + "\n", out_dir / f"summary_{split}.json"),
        atomic_write_text(format_table(summaries, paired=paired) + "\n", out_dir / f"summary_{split}.txt"),
    ]
    frames = [f for label, r in results.items() if label not in REFERENCE_LABELS for f in r.frames[:8]]
    if frames:
        paths.append(write_png(trajectory_grid(frames), out_dir / f"trajectories_{split}.png"))
    return summaries, paired, paths


# ------------------------------------------------------------------------------------------- run evaluation
def checkpoint_label(name: str, has_phase2: bool) -> str:
    """Display name of a checkpoint in result tables."""
    if name == "phase1_end":
        return "phase-1 end"
    if name == "final":
        return "phase-2 end" if has_phase2 else "final"
    return name


def evaluate_run(
    run_dir: str | os.PathLike,
    checkpoints: Sequence[str] = ("final",),
    split: str = "test",
    episodes: int = 100,
    n_scenes: int | None = None,
    n_envs: int | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    random_baseline: bool = True,
    device: str = "cpu",
    references: bool = True,
) -> dict[str, EpisodeResults]:
    """Evaluate checkpoints of a two-phase run (and reference policies) on the same episodes of ``split``.

    Each checkpoint's own encoder re-encodes the held-out scenes; every policy runs ``episodes`` episodes with
    the same environment seed (default ``config.seed + 10_000``). ``random_baseline`` adds the random walk,
    ``references`` the blind persistent walk and recognition + persistent walk (:func:`reference_actors`, seeded
    with the environment seed). Returns ``{label: results}``, the references last.
    """
    from encoders.utils.config import load_config
    from techniques.rl_navigation.checkpointing import ENCODER_FILE, POLICY_FILE, checkpoint_dir
    from techniques.rl_navigation.config import TwoPhaseConfig, resolve_device, run_budget
    from techniques.rl_navigation.environment import make_env
    from techniques.rl_navigation.semantic_encoder import SemanticEncoder

    run_dir = Path(run_dir)
    cfg = load_config(TwoPhaseConfig, run_dir)
    dev = resolve_device(device)
    seed = cfg.seed + 10_000 if seed is None else seed
    n_envs = n_envs or min(cfg.n_envs, episodes)
    out: dict[str, EpisodeResults] = {}
    env = None
    for name in checkpoints:
        ckpt = checkpoint_dir(run_dir, name)
        encoder = SemanticEncoder.from_name(cfg.encoder, ckpt / ENCODER_FILE, dev, precision=cfg.precision)
        env = make_env(cfg, encoder, split, n_scenes, n_envs)
        env.seed(seed)
        model = load_policy(ckpt / POLICY_FILE, cfg.policy)
        label = checkpoint_label(name, run_budget(cfg).phase2 > 0)
        logger.info("evaluating %s (%s) on %d %s episodes", label, ckpt, episodes, split)
        out[label] = run_episodes(env, policy_actor(model, deterministic), episodes)
    wanted = [RANDOM_WALK] * random_baseline + [BLIND_WALK, RECOGNITION_WALK] * references
    if wanted and env is None:  # the references alone: any encoder gives the same episodes
        encoder = SemanticEncoder.from_name(cfg.encoder, checkpoint_dir(run_dir) / ENCODER_FILE, dev, cfg.precision)
        env = make_env(cfg, encoder, split, n_scenes, n_envs)
    actors = reference_actors(env, seed) if wanted else {}  # each used once, from its freshly seeded generator
    for label in wanted:
        env.seed(seed)
        logger.info("evaluating %s on %d %s episodes", label, episodes, split)
        out[label] = run_episodes(env, actors[label], episodes)
    return out


__all__ = [
    "METRICS",
    "PAIRED_COLUMN",
    "PAIRED_KEY",
    "RANDOM_WALK",
    "REFERENCE_LABELS",
    "EpisodeResults",
    "checkpoint_label",
    "episode_table",
    "evaluate_run",
    "format_table",
    "load_policy",
    "paired_differences",
    "policy_actor",
    "random_actor",
    "reference_actors",
    "run_episodes",
    "summarize",
    "trajectory_grid",
    "write_png",
    "write_report",
]
