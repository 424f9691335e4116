"""Wall time of a phase-1 run in the studies' setting, per observation and curiosity, and where it goes.

For each (observation, curiosity) pair one :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer` is built with
the studies' shared settings (``experiments.studies.config.study_rl``: ``ObjectNav-v0`` on 12x12 cells, 16
agents x 128 steps, 4 PPO epochs, minibatch 512, MLP 128x128, cells embedded in 16 values) and trains ``--rollouts``
rollouts after one warm-up rollout, under :mod:`cProfile`. The table gives env-steps/s, the projected wall time of a
``--steps`` run (training only, no evaluation), and the share of the time in the rollout (environment, policy
forward passes, SB3's buffer), PPO's update and the curiosity learner's update (forward model / RND / ICM, the
intrinsic critic, the reward normaliser).

    python -m benchmarks.run_time                                        # oracle, pixels, window x none, semantic
    python -m benchmarks.run_time --observations window --curiosity semantic rnd --encoder-weights W.pth

The window observation reads a random-init ``vit_mini_patch14`` unless ``--encoder-weights`` is given (the time does
not depend on the weights).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import tempfile
import time

import torch

from encoders.utils.config import replace_nested
from encoders.utils.precision import describe
from experiments.studies.config import step_budget, study_rl
from techniques.rl_navigation.trainer import TwoPhaseTrainer

#: cProfile entries whose cumulative time is reported: (label, file suffix, function name).
PARTS = (
    ("rollout", "on_policy_algorithm.py", "collect_rollouts"),
    ("PPO update", "ppo/ppo.py", "train"),
    ("curiosity update", "rl_navigation/curiosity.py", "update"),
)


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(v[3] for (path, _, fn), v in stats.stats.items() if fn == name and path.endswith(suffix))


def bench(observation: str, curiosity: str, args: argparse.Namespace, tmp: str) -> dict[str, float]:
    rl = study_rl(encoder="vit_mini_patch14", observation=observation, torch_threads=args.threads)
    fields = {
        "encoder_weights": args.encoder_weights,
        **step_budget(rl, False),
        "task": "ObjectNav-v0",
        "curiosity.space": curiosity,
        "intrinsic_coef": 0.0 if curiosity == "none" else rl.intrinsic_coef,
        "eval_episodes": 0,
        "device": "cpu",
    }
    cfg = replace_nested(rl, {**fields, "run_dir": f"{tmp}/{observation}_{curiosity}"})
    trainer = TwoPhaseTrainer(cfg, cfg.run_dir)
    try:
        trainer.train(max_rollouts=1)  # warm-up
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        trainer.train(max_rollouts=args.rollouts)
        profiler.disable()
        seconds = time.perf_counter() - t0
        stats = pstats.Stats(profiler)
        rate = args.rollouts * cfg.n_envs * cfg.ppo.n_steps / seconds
        row = {"steps/s": rate, "run_min": args.steps / rate / 60, "autocast": describe(trainer.encoder.autocast_dtype)}
        for label, suffix, name in PARTS:
            row[label] = _cumulative(stats, suffix, name) / seconds
        return row
    finally:
        trainer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", nargs="+", default=["oracle", "pixels", "window"])
    parser.add_argument("--curiosity", nargs="+", default=["none", "semantic"])
    parser.add_argument("--steps", type=int, default=500_000, help="run length the wall time is projected to")
    parser.add_argument("--rollouts", type=int, default=8, help="timed rollouts per row")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--encoder-weights", default=None, help="encoder of the window observation (default random)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for observation in args.observations:
            for curiosity in args.curiosity:
                rows.append((observation, curiosity, bench(observation, curiosity, args, tmp)))
    print(
        f"phase-1 run time in the studies' setting (ObjectNav-v0, 12x12 cells, 16 agents x 128 steps, 4 epochs), "
        f"{args.threads} torch thread(s), {args.rollouts} timed rollouts per row; share of the time in each part\n"
    )
    print(
        f"| observation | curiosity | env-steps/s | {args.steps:,}-step run (min) | rollout | PPO update | curiosity |"
    )
    print("|---|---|---|---|---|---|---|")
    for observation, curiosity, r in rows:
        print(
            f"| {observation} | {curiosity} | {r['steps/s']:.0f} | {r['run_min']:.1f} | {r['rollout']:.0%} | "
            f"{r['PPO update']:.0%} | {r['curiosity update']:.0%} |"
        )
    print(f"\ntorch {torch.__version__}; encoder autocast: {rows[-1][2]['autocast']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
