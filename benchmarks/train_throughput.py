"""Two-phase training throughput: env-steps/s of plain PPO, phase 1 and phase 2, and the cost of a feature refresh.

For each encoder, in one run:

- **plain PPO**: stable-baselines3 ``PPO`` with the trainer's policy and hyperparameters (``ppo_arguments``) on the
  same environment, without curiosity: the peer of phase 1, whose curiosity overhead is ``phase 1 / plain PPO``;
- for each ``--precisions`` entry, one :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer` (random-init
  weights; the numbers do not depend on them) runs warm-up + timed rollouts in phase 1 (frozen encoder: PPO +
  forward model + intrinsic critic), then switches to phase 2 and times rollouts again (PPO + forward model + one
  deferred backward through the top blocks + in-place refresh of the cached grids + EMA target refresh).

The learners are timed round-robin, one rollout each in turn (``--rollouts`` rounds after the warm-up), so every
ratio compares rollouts run under the same load. Env-steps/s count every rollout's transitions over its whole wall
time, PPO's update and the curiosity work included. Phase-2 rows also give their ratio to the fp32 phase 2 of the
same encoder.

The refresh table compares, in the same run, re-running only the top ``n`` blocks from the cached boundary tokens
(:meth:`envs.features.SceneFeatures.refresh`) with a full re-encode of the same scene images; the expected ratio
is about ``n / depth`` (the patch embedding and the window means are extra, fixed costs).

    python -m benchmarks.train_throughput                                  # CPU: vit_tiny_patch14, dinov2_vits14
    python -m benchmarks.train_throughput --precisions auto --encoders vit_tiny_patch14
    python -m benchmarks.train_throughput --device cuda --image-size 448 --n-envs 64
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch
from stable_baselines3 import PPO

from encoders.utils.config import replace_nested
from encoders.utils.precision import PRECISIONS, autocast_dtype, describe
from envs.features import SceneFeatures
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.environment import make_env
from techniques.rl_navigation.semantic_encoder import SemanticEncoder
from techniques.rl_navigation.trainer import TwoPhaseTrainer, ppo_arguments


class _Runner:
    """One learner timed rollout by rollout: ``learn(n)`` runs ``n`` rollouts of ``steps`` env-steps each."""

    def __init__(self, name: str, learn, steps: int):
        self.name, self.learn, self.steps = name, learn, steps
        self.seconds = 0.0
        self.rollouts = 0

    def timed(self) -> None:
        t0 = time.perf_counter()
        self.learn(1)
        self.seconds += time.perf_counter() - t0
        self.rollouts += 1

    @property
    def steps_per_s(self) -> float:
        return self.rollouts * self.steps / self.seconds


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bench_config(encoder: str, precision: str, args: argparse.Namespace) -> TwoPhaseConfig:
    return replace_nested(
        TwoPhaseConfig(),
        {
            "encoder": encoder,
            "precision": precision,
            "image_size": args.image_size,
            "n_train_scenes": args.scenes,
            "min_start_distance": 6,
            "max_episode_steps": 100,
            "phase1_episodes": 10**9,
            "phase2_episodes": 10**9,
            "unfreeze_layers": args.unfreeze_layers,
            "n_envs": args.n_envs,
            "device": args.device,
            "torch_threads": args.threads,
            "checkpoint_every": 0,
            "trajectory_every": 0,
            "ppo.n_steps": args.n_steps,
            "ppo.batch_size": min(1024, args.n_steps * args.n_envs),
            "ppo.n_epochs": 4,
            "curiosity.forward_batch_size": min(1024, args.n_steps * args.n_envs),
            "curiosity.forward_epochs": 2,
        },
    )


def plain_ppo(cfg: TwoPhaseConfig) -> tuple[PPO, object]:
    """SB3 PPO (the trainer's policy, hyperparameters and environment) without curiosity, and its env."""
    env = make_env(cfg, SemanticEncoder.from_name(cfg.encoder, None, "cpu"), "train")
    policy, kwargs = ppo_arguments(cfg)
    return PPO(policy, env, device="cpu", **kwargs), env


def bench_encoder(encoder: str, args: argparse.Namespace, tmp: str) -> list[dict]:
    """Plain PPO, phase 1 and phase 2 (per precision) of ``encoder``, timed round-robin one rollout at a time, so
    that every ratio compares rollouts run under the same load."""
    steps = args.n_steps * args.n_envs
    phase1_cfg = bench_config(encoder, "auto", args)
    trainers = {"phase 1": TwoPhaseTrainer(phase1_cfg, f"{tmp}/{encoder}_p1")}
    for precision in args.precisions:
        trainers[precision] = TwoPhaseTrainer(bench_config(encoder, precision, args), f"{tmp}/{encoder}_{precision}")
    baseline, baseline_env = plain_ppo(phase1_cfg)
    try:
        runners = [_Runner("plain PPO", lambda n: baseline.learn(n * steps, reset_num_timesteps=False), steps)]
        runners += [_Runner(name, lambda n, t=t: t.train(max_rollouts=n), steps) for name, t in trainers.items()]
        for name, trainer in trainers.items():
            trainer.train(max_rollouts=args.warmup)
            if name != "phase 1":
                trainer._switch_to_phase2()
        baseline.learn(args.warmup * steps)
        for runner in runners[2:]:
            runner.learn(args.warmup)  # phase-2 warm-up
        for _ in range(args.rollouts):
            for runner in runners:
                runner.timed()
        rate = {r.name: r.steps_per_s for r in runners}
        rows = []
        for precision in args.precisions:
            trainer = trainers[precision]
            row = {"encoder": encoder, "precision": describe(trainer.encoder.autocast_dtype)}
            row.update(plain=rate["plain PPO"], phase1=rate["phase 1"], phase2=rate[precision])
            row["depth"] = trainer.encoder.n_blocks
            rows.append(row)
        rows[-1].update(refresh_times(trainers[args.precisions[-1]], args.repeats))
        return rows
    finally:
        for trainer in trainers.values():
            trainer.close()
        baseline_env.close()


def refresh_times(trainer: TwoPhaseTrainer, repeats: int) -> dict[str, float]:
    """Seconds of a top-block refresh and of a full re-encode of the trainer's scenes."""
    cache = trainer.env.scene_features
    backbone = trainer.encoder.backbone
    batch = trainer.cfg.encode_batch_size
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

    def refresh_top() -> None:
        with trainer.encoder.autocast():
            cache.refresh(backbone, batch)
        sync()

    def full() -> None:
        with trainer.encoder.autocast():
            SceneFeatures.from_encoder(backbone, cache.images, batch)
        sync()

    return {"refresh_s": _time(refresh_top, repeats), "full_s": _time(full, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["vit_tiny_patch14", "dinov2_vits14"])
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, default=["fp32", "auto"], help="two_phase --precision values"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--image-size", type=int, default=224, help="scene side in pixels (224: 16x16 cells)")
    parser.add_argument("--scenes", type=int, default=16, help="training scenes (refresh cost scales with it)")
    parser.add_argument("--n-envs", type=int, default=32)
    parser.add_argument("--n-steps", type=int, default=64, help="steps per agent per rollout")
    parser.add_argument("--unfreeze-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch default)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rollouts per phase")
    parser.add_argument("--rollouts", type=int, default=3, help="timed rollouts per phase")
    parser.add_argument("--repeats", type=int, default=3, help="timed refreshes / re-encodes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in args.encoders for row in bench_encoder(name, args, tmp)]
    print(
        f"two-phase training throughput on {args.device} ({args.threads or torch.get_num_threads()} torch threads), "
        f"{args.n_envs} agents x {args.n_steps} steps per rollout, {args.image_size}px scenes, "
        f"top {args.unfreeze_layers} blocks fine-tuned in phase 2; auto = "
        f"{describe(autocast_dtype('auto', args.device if args.device != 'auto' else 'cpu'))} here\n"
    )
    print(
        "| encoder | precision | plain PPO env-steps/s | phase 1 env-steps/s | phase 1 / plain PPO | "
        "phase 2 env-steps/s | phase 2 / phase 1 | phase 2 x fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        fp32 = next((x["phase2"] for x in rows if x["encoder"] == r["encoder"] and x["precision"] == "fp32"), None)
        vs_fp32 = f"{r['phase2'] / fp32:.2f}" if fp32 else "-"
        p = r["plain"]
        print(
            f"| {r['encoder']} | {r['precision']} | {p:.0f} | {r['phase1']:.0f} | {r['phase1'] / p:.2f} | "
            f"{r['phase2']:.0f} | {r['phase2'] / r['phase1']:.2f} | {vs_fp32} |"
        )
    print()
    print("| encoder | precision | scenes | refresh (top blocks) s | full re-encode s | ratio | expected n/depth |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "refresh_s" in r:
            print(
                f"| {r['encoder']} | {r['precision']} | {args.scenes} | {r['refresh_s']:.3f} | {r['full_s']:.3f} | "
                f"{r['refresh_s'] / r['full_s']:.2f} | {args.unfreeze_layers / r['depth']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
