"""Two-phase training throughput: env-steps/s of phase 1 and phase 2, and the cost of a phase-2 feature refresh.

For each encoder, one :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer` (random-init weights; the numbers
do not depend on them) runs warm-up + timed rollouts in phase 1 (frozen encoder: PPO + forward model), then
switches to phase 2 and times rollouts again (PPO + forward model + encoder top blocks + in-place refresh of the
cached grids + EMA target refresh). Env-steps/s count every rollout's transitions over its whole wall time,
PPO's update and the curiosity work included.

The refresh row compares, in the same run, re-running only the top ``n`` blocks from the cached boundary tokens
(:meth:`envs.features.SceneFeatures.refresh`) with a full re-encode of the same scene images; the expected ratio
is about ``n / depth`` (the patch embedding and the window means are extra, fixed costs).

    python -m benchmarks.train_throughput                                  # CPU: vit_tiny_patch14, dinov2_vits14
    python -m benchmarks.train_throughput --device cuda --image-size 448 --n-envs 64
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch

from encoders.utils.config import replace_nested
from envs.features import SceneFeatures
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.trainer import TwoPhaseTrainer


def _time_rollouts(trainer: TwoPhaseTrainer, warmup: int, timed: int) -> float:
    trainer.model.learn_rollouts(warmup)
    t0 = time.perf_counter()
    trainer.model.learn_rollouts(timed)
    elapsed = time.perf_counter() - t0
    return timed * trainer.cfg.ppo.n_steps * trainer.cfg.n_envs / elapsed


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bench_encoder(encoder: str, args: argparse.Namespace) -> dict:
    cfg = replace_nested(
        TwoPhaseConfig(),
        {
            "encoder": encoder,
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
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = TwoPhaseTrainer(cfg, run_dir)
        try:
            phase1 = _time_rollouts(trainer, args.warmup, args.rollouts)
            trainer._switch_to_phase2()
            phase2 = _time_rollouts(trainer, args.warmup, args.rollouts)
            cache = trainer.env.scene_features
            backbone = trainer.encoder.backbone
            sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

            def refresh() -> None:
                cache.refresh(backbone, cfg.encode_batch_size)
                sync()

            def full() -> None:
                SceneFeatures.from_encoder(backbone, cache.images, cfg.encode_batch_size)
                sync()

            t_refresh = _time(refresh, args.repeats)
            t_full = _time(full, args.repeats)
        finally:
            trainer.close()
    depth = trainer.encoder.n_blocks
    return {
        "encoder": encoder,
        "depth": depth,
        "phase1": phase1,
        "phase2": phase2,
        "refresh_s": t_refresh,
        "full_s": t_full,
        "expected": args.unfreeze_layers / depth,
        "scenes": args.scenes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["vit_tiny_patch14", "dinov2_vits14"])
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
    rows = [bench_encoder(name, args) for name in args.encoders]
    print(
        f"two-phase training throughput on {args.device} ({args.threads or torch.get_num_threads()} torch threads), "
        f"{args.n_envs} agents x {args.n_steps} steps per rollout, {args.image_size}px scenes, "
        f"top {args.unfreeze_layers} blocks fine-tuned in phase 2\n"
    )
    print("| encoder | phase 1 env-steps/s | phase 2 env-steps/s | phase 2 / phase 1 |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['phase1']:.0f} | {r['phase2']:.0f} | {r['phase2'] / r['phase1']:.2f} |")
    print()
    print("| encoder | scenes | refresh (top blocks) s | full re-encode s | ratio | expected n/depth |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['scenes']} | {r['refresh_s']:.3f} | {r['full_s']:.3f} | "
            f"{r['refresh_s'] / r['full_s']:.2f} | {r['expected']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
