"""Encoder throughput: images/s and peak memory of ``forward_features`` per preset and attention path.

Each configuration runs in a fresh subprocess so its peak memory (CPU: peak RSS growth over the
loaded model; CUDA: ``max_memory_allocated``) is not polluted by the others. The SDPA path
(``F.scaled_dot_product_attention``, the default) is compared in the same run with the plain
matmul-softmax path that the official DINOv2 code uses when xFormers is absent.

    python -m benchmarks.encoder_throughput                     # CPU, float32, default presets
    python -m benchmarks.encoder_throughput --device cuda --dtype bfloat16 --models dinov2_vitl14 dinov2_vitg14
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import torch

import encoders

DEFAULT_MODELS = ["vit_pico_patch14", "vit_mini_patch14", "vit_tiny_patch14", "dinov2_vits14", "dinov2_vitb14"]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _RssSampler:
    """Samples this process's RSS every few milliseconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval_s: float = 0.002):
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(interval_s)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_one(model_name: str, batch: int, size: int, device: str, dtype: str, sdpa: bool, seconds: float) -> dict:
    """Time ``forward_features`` in eval mode under ``torch.inference_mode`` (one configuration)."""
    torch.manual_seed(0)
    model = encoders.create_model(model_name, use_sdpa=sdpa).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    autocast = torch.autocast(device_type=device, dtype=getattr(torch, dtype), enabled=dtype != "float32")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rss0 = _rss_mb()  # model and input already allocated
    with torch.inference_mode(), autocast, _RssSampler() as rss:
        model.forward_features(x)  # warm-up (allocator, kernels)
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        n, t0 = 0, time.perf_counter()
        while True:
            model.forward_features(x)
            sync()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 2:
                break
    # CUDA: peak allocated memory during the timed loop; CPU: peak RSS growth over the loaded model + input.
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss.peak - rss0
    return {
        "model": model_name,
        "batch": batch,
        "attention": "sdpa" if sdpa else "matmul-softmax",
        "img_per_s": n * batch / elapsed,
        "peak_mem_mb": peak_mb,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--seconds", type=float, default=6.0, help="minimum timed seconds per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(run_one(**spec)))
        return

    threads = torch.get_num_threads()
    print(f"device={args.device} dtype={args.dtype} size={args.size} torch={torch.__version__} threads={threads}\n")
    print("| model | batch | SDPA img/s | matmul-softmax img/s | SDPA / matmul | SDPA peak MB | matmul peak MB |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for batch in args.batches:
            results = {}
            for sdpa in (True, False):
                spec = dict(model_name=model, batch=batch, size=args.size, device=args.device, dtype=args.dtype,
                            sdpa=sdpa, seconds=args.seconds)  # fmt: skip
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.encoder_throughput", "--worker", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[sdpa] = json.loads(out.stdout.strip().splitlines()[-1])
            s, m = results[True], results[False]
            print(
                f"| {model} | {batch} | {s['img_per_s']:.1f} | {m['img_per_s']:.1f} | "
                f"{s['img_per_s'] / m['img_per_s']:.2f} | {s['peak_mem_mb']:.0f} | {m['peak_mem_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
