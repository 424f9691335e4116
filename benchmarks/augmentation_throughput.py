"""Throughput of the DINOv2 multi-crop augmentation (``encoders.data.augmentations.DataAugmentationDINO``).

Measures, in one run on this machine:

1. single process: samples/s of the full multi-crop pipeline (default 2 x 224 + 8 x 96 crops of a 448 x 448
   image), with the per-operation time breakdown;
2. a DataLoader with ``--workers`` workers (crops stacked into batches), from in-memory images and from JPEG
   files on disk (``ImageFolderDataset``, decoding included);
3. the consumer side: samples/s of a teacher-student step of a small backbone (student forward + backward on
   all crops, teacher forward on the global crops) at the crop sizes of the ``tiny`` pretraining preset,
   and the augmentation rate at those crop sizes, so the two can be compared.

    python -m benchmarks.augmentation_throughput
    python -m benchmarks.augmentation_throughput --samples 400 --workers 4 --model vit_tiny_patch14
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import encoders
from encoders.data.augmentations import DataAugmentationDINO
from encoders.data.image_folder import ImageFolderDataset
from encoders.data.samplers import ShardedInfiniteSampler


def natural_like_image(size: int, seed: int) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 image with smooth structure plus fine texture (not flat, not pure noise)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, (size, size, 3))
    return np.clip(coarse + noise, 0, 255).astype(np.uint8)


class InMemoryImages(Dataset):
    """A few distinct images held in memory, returned through a transform (no decoding)."""

    def __init__(self, images: list[np.ndarray], transform: Any):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.transform(self.images[i]), 0


def stack_crops(samples: list[tuple[dict[str, Any], int]]) -> dict[str, torch.Tensor]:
    """Collate crop-major as the pretraining collate does: ``(n_global * B, 3, G, G)`` and ``(n_local * B, ...)``."""
    crops = [s[0] for s in samples]
    out = {"global_crops": torch.stack([c for k in range(2) for c in (s["global_crops"][k] for s in crops)])}
    n_local = len(crops[0]["local_crops"])
    if n_local:
        out["local_crops"] = torch.stack([s["local_crops"][k] for k in range(n_local) for s in crops])
    return out


def worker_init(_: int) -> None:
    # 0 (sequential), not 1: cv2.setNumThreads(1) in a forked worker can deadlock (OpenCV pthreads backend).
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def bench_single(aug: DataAugmentationDINO, image: np.ndarray, n: int) -> tuple[float, dict[str, float]]:
    """Samples/s in this process, and ms per sample for each operation."""
    for _ in range(3):
        aug(image)
    aug.op_timings = {}
    t0 = time.perf_counter()
    for _ in range(n):
        aug(image)
    elapsed = time.perf_counter() - t0
    ops = {k: 1e3 * v / n for k, v in aug.op_timings.items()}
    aug.op_timings = None
    return n / elapsed, ops


def bench_loader(dataset: Dataset, workers: int, batch_size: int, n_batches: int) -> float:
    """Samples/s through a DataLoader (worker start-up and the first batch excluded)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardedInfiniteSampler(len(dataset), seed=0),
        num_workers=workers,
        collate_fn=stack_crops,
        worker_init_fn=worker_init if workers > 0 else None,
        prefetch_factor=2 if workers > 0 else None,
    )
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in islice(it, n_batches):
        pass
    elapsed = time.perf_counter() - t0
    del it
    return n_batches * batch_size / elapsed


def bench_consumer(model_name: str, global_size: int, local_size: int, n_local: int, batch: int, steps: int) -> float:
    """Samples/s of a teacher-student step of the backbone alone (heads and losses excluded: an upper bound)."""
    torch.manual_seed(0)
    student = encoders.create_model(model_name)
    teacher = encoders.create_model(model_name).eval().requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    g = torch.randn(2 * batch, 3, global_size, global_size)
    loc = torch.randn(n_local * batch, 3, local_size, local_size) if n_local else None

    def step() -> None:
        with torch.no_grad():
            teacher.forward_features(g)
        outs = student.forward_features([g, loc] if loc is not None else [g])
        loss = sum(o["x_norm_clstoken"].square().mean() for o in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def write_jpegs(folder: Path, count: int, size: int) -> None:
    for i in range(count):
        ok, buf = cv2.imencode(
            ".jpg", natural_like_image(size, seed=100 + i)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        buf.tofile(str(folder / f"{i:04d}.jpg"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=200, help="samples timed in the single-process run")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--batch-size", type=int, default=32, help="DataLoader batch size")
    p.add_argument("--batches", type=int, default=8, help="DataLoader batches timed (after the first)")
    p.add_argument("--repeats", type=int, default=2, help="DataLoader runs per row (the best is reported)")
    p.add_argument("--image-size", type=int, default=448, help="side of the square source images")
    p.add_argument("--global-size", type=int, default=224)
    p.add_argument("--local-size", type=int, default=96)
    p.add_argument("--local-number", type=int, default=8)
    p.add_argument("--model", default="vit_mini_patch14", help="backbone of the consumer measurement ('' skips it)")
    p.add_argument("--model-global-size", type=int, default=112, help="global crop side of the consumer (tiny preset)")
    p.add_argument("--model-local-size", type=int, default=56, help="local crop side of the consumer (tiny preset)")
    p.add_argument("--model-local-number", type=int, default=6, help="local crops of the consumer (tiny preset)")
    p.add_argument("--model-batch", type=int, default=32, help="batch of the consumer (tiny preset)")
    p.add_argument("--model-steps", type=int, default=2)
    args = p.parse_args(argv)

    image = natural_like_image(args.image_size, seed=0)
    crops = f"2x{args.global_size} + {args.local_number}x{args.local_size}"
    aug = DataAugmentationDINO(
        global_crops_size=args.global_size,
        local_crops_size=args.local_size,
        local_crops_number=args.local_number,
        seed=0,
    )
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(0)  # as in DataLoader workers: sequential OpenCV
    single, ops = bench_single(aug, image, args.samples)
    cv2.setNumThreads(cv2_threads)

    memory = InMemoryImages([natural_like_image(args.image_size, seed=s) for s in range(16)], aug)
    best = lambda fn: max(fn() for _ in range(args.repeats))  # noqa: E731  (best of: the CPU may be shared)
    loader_mem = best(lambda: bench_loader(memory, args.workers, args.batch_size, args.batches))
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), 32, args.image_size)
        files = ImageFolderDataset(tmp, transform=aug)
        t0 = time.perf_counter()
        for i in range(len(files)):
            files.load_image(i)
        decode_ms = 1e3 * (time.perf_counter() - t0) / len(files)
        loader_jpeg = best(lambda: bench_loader(files, args.workers, args.batch_size, args.batches))

    print(f"\nMulti-crop augmentation, {args.image_size}x{args.image_size} source, crops {crops}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"(machine: {os.cpu_count()} CPU cores, load average at the end {load}; sequential OpenCV as in workers;")
    print(f" DataLoader rows: best of {args.repeats} runs, batch {args.batch_size}, crops stacked into batches)\n")
    print("| pipeline | samples/s | ms/sample | vs single process |")
    print("|---|---:|---:|---:|")
    print(f"| single process ({args.samples} samples) | {single:.1f} | {1e3 / single:.2f} | 1.00x |")
    print(
        f"| DataLoader, {args.workers} workers, in-memory images | {loader_mem:.1f} | {1e3 / loader_mem:.2f} "
        f"| {loader_mem / single:.2f}x |"
    )
    print(
        f"| DataLoader, {args.workers} workers, JPEG files (decode {decode_ms:.2f} ms/image) | {loader_jpeg:.1f} "
        f"| {1e3 / loader_jpeg:.2f} | {loader_jpeg / single:.2f}x |"
    )
    total = sum(ops.values())
    print("\n| operation | ms/sample | share |")
    print("|---|---:|---:|")
    for name, ms in sorted(ops.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {ms:.3f} | {100 * ms / total:.1f}% |")
    print(f"| sum of operations | {total:.3f} | 100% |")
    print(f"| per-sample overhead (sampling, dict) | {1e3 / single - total:.3f} | |")

    if args.model:
        small = DataAugmentationDINO(
            global_crops_size=args.model_global_size,
            local_crops_size=args.model_local_size,
            local_crops_number=args.model_local_number,
            seed=0,
        )
        cv2.setNumThreads(0)
        small_rate, _ = bench_single(small, image, args.samples)
        small_loader = best(
            lambda: bench_loader(InMemoryImages(memory.images, small), args.workers, args.model_batch, args.batches)
        )
        cv2.setNumThreads(cv2_threads)
        consumer = bench_consumer(
            args.model,
            args.model_global_size,
            args.model_local_size,
            args.model_local_number,
            args.model_batch,
            args.model_steps,
        )
        small_crops = f"2x{args.model_global_size} + {args.model_local_number}x{args.model_local_size}"
        print(f"\nConsumer: {args.model} teacher-student backbone step, crops {small_crops}, batch {args.model_batch}")
        print(f"(torch threads: {torch.get_num_threads()}; backbone only, so the real trainer is slower)\n")
        print("| quantity | samples/s |")
        print("|---|---:|")
        print(f"| augmentation, 1 process, {small_crops} | {small_rate:.1f} |")
        print(f"| augmentation, DataLoader with {args.workers} workers, {small_crops} | {small_loader:.1f} |")
        print(f"| trainer step (backbone fwd+bwd, teacher fwd) | {consumer:.1f} |")
        print(f"| ratio: {args.workers}-worker augmentation / trainer | {small_loader / consumer:.1f}x |")


if __name__ == "__main__":
    main()
