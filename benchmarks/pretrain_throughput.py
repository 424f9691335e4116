"""Pretraining throughput: training images/s and peak memory of one DINOv2 step per preset.

A step is what the trainer runs per iteration: teacher forward, student forward on all crops (2 global +
local), DINO + iBOT + KoLeo losses, backward, gradient clipping, AdamW, EMA update. Batches are random
crops collated with real iBOT masks (the model cost alone); the ``data img/s`` column times the data
pipeline (decode + multi-crop augmentation + collate, one process, PNGs of 160-240 px) for the same crop
sizes, to show which side limits a run with ``num_workers`` workers.

Each preset runs in a fresh subprocess, so its peak memory is its own (CPU: peak RSS of the process;
CUDA: ``torch.cuda.max_memory_allocated``).

    python -m benchmarks.pretrain_throughput                       # CPU: pico, tiny, small, vits14
    python -m benchmarks.pretrain_throughput --device cuda --presets small vits14 vitb14 vitl14
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# CPU batch sizes that keep each preset to seconds per iteration on a 2-core machine; CUDA uses the preset's.
CPU_BATCH = {"pico": 4, "tiny": 32, "small": 16, "vits14": 8, "vitb14": 4}
CPU_ITERS = {"pico": 20, "tiny": 10, "small": 4, "vits14": 3, "vitb14": 2}


def _config(preset: str, batch: int, device: str):
    from encoders.train.config import PRESETS, PretrainConfig
    from encoders.utils.config import replace_nested

    return replace_nested(
        PretrainConfig(), {**PRESETS[preset], "train.batch_size_per_gpu": batch, "train.device": device}
    )


def _batches(cfg, n: int) -> list[dict]:
    from encoders.data.collate import MaskedMultiCropCollate

    c = cfg.crops
    collate = MaskedMultiCropCollate(14, cfg.ibot.mask_ratio_min_max, cfg.ibot.mask_sample_probability, seed=0)
    g = torch.Generator().manual_seed(0)
    out = []
    for k in range(n):
        samples = [
            (
                {
                    "global_crops": [torch.randn(3, c.global_crops_size, c.global_crops_size, generator=g)] * 2,
                    "local_crops": [torch.randn(3, c.local_crops_size, c.local_crops_size, generator=g)]
                    * c.local_crops_number,
                },
                k * 1000 + i,
            )
            for i in range(cfg.train.batch_size_per_gpu)
        ]
        out.append(collate(samples))
    return out


def _data_rate(cfg, seconds: float = 3.0) -> float:
    """Images/s of image decoding + multi-crop augmentation + collate in this process."""
    import cv2
    import numpy as np

    from encoders.train.data import MultiCropDataPipeline

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(32):
            h, w = (int(v) for v in rng.integers(160, 240, size=2))
            cv2.imwrite(f"{tmp}/{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        cfg.data, cfg.train.num_workers = tmp, 0
        pipe = MultiCropDataPipeline.from_config(cfg, 14, cfg.ibot.mask_ratio_min_max, cfg.ibot.mask_sample_probability)
        batches = pipe.loader(0)
        next(batches)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            next(batches)
            n += cfg.train.batch_size_per_gpu
        return n / (time.perf_counter() - t0)


def run_one(preset: str, batch: int, iters: int, device: str) -> dict:
    """Time ``iters`` training steps (after 1 warm-up step) of ``preset`` in this process."""
    from encoders.train.schedules import apply_optim_scheduler
    from encoders.train.ssl_meta_arch import SSLMetaArch

    torch.manual_seed(0)
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    cfg = _config(preset, batch, device)
    model = SSLMetaArch(cfg, device=dev).train()
    opt = torch.optim.AdamW(model.get_params_groups())
    apply_optim_scheduler(opt, lr=1e-4, wd=0.04, last_layer_lr=1e-4)
    batches = _batches(cfg, min(iters, 3))

    def step(b: dict) -> float:
        opt.zero_grad(set_to_none=True)
        losses = model.forward_backward(b, teacher_temp=0.04)
        model.clip_grad_norm_(3.0)
        opt.step()
        model.update_teacher(0.994)
        return float(losses["total_loss"])

    step(batches[0])
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for k in range(iters):
        step(batches[k % len(batches)])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    c = cfg.crops
    return {
        "preset": preset,
        "arch": cfg.student.arch,
        "backbone_m": sum(p.numel() for p in model.student.backbone.parameters()) / 1e6,
        "heads_m": sum(p.numel() for n, p in model.student.named_parameters() if not n.startswith("backbone.")) / 1e6,
        "crops": f"2x{c.global_crops_size} + {c.local_crops_number}x{c.local_crops_size}",
        "prototypes": cfg.dino.head_n_prototypes,
        "batch": batch,
        "s_per_it": elapsed / iters,
        "images_per_s": batch * iters / elapsed,
        "peak_mb": peak_mb,
        "data_images_per_s": _data_rate(cfg),
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        "precision": str(model.autocast_dtype or torch.float32).replace("torch.", ""),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="*", default=["pico", "tiny", "small", "vits14"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=0, help="images per step (0: CPU table / preset default)")
    parser.add_argument("--iters", type=int, default=0, help="timed steps (0: per-preset default)")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_one(args.worker, args.batch, args.iters, args.device)))
        return

    from encoders.train.config import PRESETS

    rows = []
    for preset in args.presets:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        if args.device == "cpu":
            batch = args.batch or CPU_BATCH.get(preset, 2)
        else:
            batch = args.batch or PRESETS[preset].get("train.batch_size_per_gpu", 64)
        iters = args.iters or (CPU_ITERS.get(preset, 2) if args.device == "cpu" else 10)
        cmd = [sys.executable, "-m", "benchmarks.pretrain_throughput", "--worker", preset]
        cmd += ["--batch", str(batch), "--iters", str(iters), "--device", args.device]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if proc.returncode != 0:
            print(f"{preset}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    if not rows:
        return
    base = rows[0]
    print(
        f"\nDINOv2 pretraining step on {base['device']}, {base['precision']}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    mem = "peak GPU MB" if args.device == "cuda" else "peak RSS MB"
    header = ["preset", "backbone", "params M (backbone / heads)", "crops", "K", "batch", "s/it", "img/s"]
    header += [f"vs {base['preset']}", mem, "data img/s (1 proc)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = [
            r["preset"],
            r["arch"],
            f"{r['backbone_m']:.1f} / {r['heads_m']:.1f}",
            r["crops"],
            str(r["prototypes"]),
            str(r["batch"]),
            f"{r['s_per_it']:.3f}",
            f"{r['images_per_s']:.1f}",
            f"{r['images_per_s'] / base['images_per_s']:.3f}x",
            f"{r['peak_mb']:.0f}",
            f"{r['data_images_per_s']:.1f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
