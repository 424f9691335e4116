"""Environment throughput: agent-steps/s of ImageNavVecEnv with cached features vs encoding the window every step.

Both paths step the same batched core with random actions over the same procedural scenes:

- **cached**: the default fast path; the encoder saw every scene once (``SceneFeatures``), a step is an array lookup
  of the window-mean features.
- **encode-per-step**: the naive alternative; every step the ``(2r+1) * patch`` pixel window around each agent is
  cut out (``observation="pixels"``) and run through the encoder, and the observation is the mean of its patch
  tokens.
- **pixel crops**: the pixel-observation env alone (no encoder; the pixel baselines' cost).

One run measures every (encoder, number of agents) pair and prints a markdown table with the ratio.

    python -m benchmarks.env_throughput                          # tiny + pico, 1/16/64 agents, 2 threads
    python -m benchmarks.env_throughput --agents 1 64 256 --threads 1
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from encoders import create_model
from encoders.preprocessing import images_to_tensor
from encoders.utils.config import parse_config
from envs.vec_env import ImageNavVecEnv
from envs.world import NavWorld

logger = logging.getLogger(__name__)


@dataclass
class ThroughputConfig:
    encoders: tuple[str, ...] = ("vit_tiny_patch14", "vit_pico_patch14")
    """encoder presets (random init: throughput does not depend on the weights)"""
    agents: tuple[int, ...] = (1, 16, 64)
    """numbers of agents N of the batched env"""
    n_scenes: int = 8
    """procedural scenes in the shared world"""
    image_size: int = 448
    """scene side in pixels (448 -> 32 x 32 cells with patch 14)"""
    patch_radius: int = 1
    """observation window radius r (cells)"""
    seconds: float = 2.0
    """minimum timed duration per measurement"""
    threads: int = 2
    """torch intra-op threads"""
    seed: int = 0
    """seed of scenes, env resets and actions"""


def _time_steps(step, n_agents: int, seconds: float, rng: np.random.Generator, n_actions: int) -> float:
    """Agent-steps per second of ``step(actions)`` run for at least ``seconds`` (after one warm-up step)."""
    actions = rng.integers(n_actions, size=(4096, n_agents))
    step(actions[0])
    steps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(16):
            step(actions[steps % len(actions)])
            steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return steps * n_agents / elapsed


def measure(cfg: ThroughputConfig) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    rows = []
    for name in cfg.encoders:
        torch.manual_seed(cfg.seed)
        encoder = create_model(name).eval()
        kwargs = dict(n_scenes=cfg.n_scenes, image_size=cfg.image_size, scene_seed=cfg.seed)
        cached_world = NavWorld.from_generator(encoder=encoder, **kwargs)
        pixel_world = NavWorld.from_generator(observation="pixels", patch_size=encoder.patch_size, **kwargs)
        for n in cfg.agents:
            rng = np.random.default_rng(cfg.seed)
            env = ImageNavVecEnv(n, world=cached_world, patch_radius=cfg.patch_radius)
            env.seed(cfg.seed)
            env.reset()
            cached = _time_steps(env.step, n, cfg.seconds, rng, env.action_space.n)

            pix_env = ImageNavVecEnv(n, world=pixel_world, observation="pixels", patch_radius=cfg.patch_radius)
            pix_env.seed(cfg.seed)
            pix_env.reset()
            pixels = _time_steps(pix_env.step, n, cfg.seconds, rng, pix_env.action_space.n)

            @torch.inference_mode()
            def encode_step(actions, pix_env=pix_env, encoder=encoder):
                obs, *_ = pix_env.step(actions)
                tokens = encoder.forward_features(images_to_tensor(obs["pixels"]))["x_norm_patchtokens"]
                return tokens.mean(dim=1).numpy()  # (N, D) window features

            encoded = _time_steps(encode_step, n, cfg.seconds, rng, pix_env.action_space.n)
            row = dict(encoder=name, dim=encoder.embed_dim, agents=n, cached=cached, encoded=encoded, pixels=pixels)
            rows.append(row)
            logger.info("%s", {k: round(v) if isinstance(v, float) else v for k, v in row.items()})
    return rows


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_config(ThroughputConfig, argv, description=__doc__.splitlines()[0])
    rows = measure(cfg)
    window = 2 * cfg.patch_radius + 1
    print(
        f"\nImageNav-v0 (window-mean observation, r={cfg.patch_radius}: {window}x{window} cells), "
        f"{cfg.n_scenes} scenes of {cfg.image_size}px, {cfg.threads} torch threads, random actions\n"
    )
    print(
        "| encoder | D | agents | cached features (agent-steps/s) | encode window every step (agent-steps/s) "
        "| ratio | pixel crops, no encoder (agent-steps/s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['dim']} | {r['agents']} | {r['cached']:,.0f} | {r['encoded']:,.0f} "
            f"| {r['cached'] / r['encoded']:,.0f}x | {r['pixels']:,.0f} |"
        )


if __name__ == "__main__":
    main()
