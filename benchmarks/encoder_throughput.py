"""Encoder throughput: ``forward_features`` images/s of the project's fp32 and bf16 paths against the official code.

Every path runs in a fresh subprocess of the same run, on the same weights and inputs:

- ``official fp32`` / ``official bf16``: the official DINOv2 ``DinoVisionTransformer`` (facebookresearch/dinov2,
  from a checkout passed as ``--official-src``), with the project model's weights loaded into it (the worker
  checks both give the same features);
- ``project fp32`` / ``project bf16``: ``encoders.eval.features.backbone_feature_fn`` with the autocast dtype of
  ``--precision fp32`` / ``bf16`` (``encoders.utils.precision``), the path of ``encode``, ``eval_encoder``,
  ``curate`` and the RL feature caches;
- with ``--compile``, the two project paths again through ``torch.compile`` (the first call, which compiles,
  is timed on its own).

Each row gives its ratio to ``project fp32`` and to ``official fp32`` in the same run, the GFLOP/s it reaches
(FLOPs counted once by ``torch.utils.flop_counter``) and its share of the GEMM ceiling of its dtype, measured
in the same run as the best of a few large square ``torch.mm`` calls (fp32, and bf16 inputs with fp32
accumulation). Peak memory: CPU peak RSS growth over the loaded model; CUDA ``max_memory_allocated``.

    git clone https://github.com/facebookresearch/dinov2 /tmp/dinov2 && git -C /tmp/dinov2 checkout b8931f7
    python -m benchmarks.encoder_throughput --official-src /tmp/dinov2 --models dinov2_vits14 --batches 32
    python -m benchmarks.encoder_throughput --official-src /tmp/dinov2 --compile     # also torch.compile
    python -m benchmarks.encoder_throughput --device cuda --models dinov2_vitl14 dinov2_vitg14
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import torch

import encoders
from encoders.eval.features import backbone_feature_fn
from encoders.registry import get_model_spec
from encoders.utils.precision import autocast, autocast_dtype

DEFAULT_MODELS = ["vit_tiny_patch14", "dinov2_vits14"]
PATHS = ("official fp32", "official bf16", "project fp32", "project bf16")
COMPILED = ("project fp32 compiled", "project bf16 compiled")
CEILING_SIDE = 2048


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


def official_model(project: torch.nn.Module, model_name: str, official_src: str) -> torch.nn.Module:
    """The official ``DinoVisionTransformer`` of ``model_name`` (hub settings, ``MemEffAttention`` blocks, which
    fall back to ``F.scaled_dot_product_attention`` without xFormers) carrying ``project``'s weights."""
    sys.path.insert(0, str(Path(official_src).resolve()))
    os.environ.setdefault("XFORMERS_DISABLED", "1")  # the CPU path; on CUDA with xFormers, unset it first
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the official layers warn at import about xFormers
        from dinov2.layers import MemEffAttention, NestedTensorBlock
        from dinov2.models.vision_transformer import DinoVisionTransformer as OfficialViT

    kwargs = {k: v for k, v in get_model_spec(model_name).kwargs.items() if k != "use_sdpa"}
    block_fn = partial(NestedTensorBlock, attn_class=MemEffAttention)
    model = OfficialViT(**kwargs, block_fn=block_fn, block_chunks=0)
    model.load_state_dict(project.state_dict(), strict=True)
    return model


def gflop_per_image(model: torch.nn.Module, size: int) -> float:
    """FLOPs of one ``forward_features`` of a ``size x size`` image, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_features(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def run_path(
    model_name: str, batch: int, size: int, device: str, path: str, seconds: float, official_src: str | None
) -> dict:
    """Time one path in eval mode under ``torch.inference_mode`` (one subprocess per path)."""
    torch.manual_seed(0)
    project = encoders.create_model(model_name).eval().requires_grad_(False)
    x = torch.randn(batch, 3, size, size, device=device)
    precision = "bf16" if "bf16" in path else "fp32"
    dtype = autocast_dtype(precision, device)
    check = None
    if path.startswith("official"):
        if official_src is None:
            raise ValueError("official paths need --official-src (a checkout of facebookresearch/dinov2)")
        model = official_model(project, model_name, official_src).to(device).eval().requires_grad_(False)
        with torch.inference_mode():
            ref = project.to(device).forward_features(x[:2])["x_norm_clstoken"]
            check = float((model.forward_features(x[:2])["x_norm_clstoken"] - ref).abs().max())
        del project

        def step():
            with autocast(device, dtype):
                return model.forward_features(x)["x_norm_clstoken"]
    else:
        features = backbone_feature_fn(project.to(device), dtype)
        if path.endswith("compiled"):
            features = torch.compile(features)

        def step():
            return features(x)["cls"]

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rss0 = _rss_mb()
    with torch.inference_mode(), _RssSampler() as rss:
        t0 = time.perf_counter()
        step()  # warm-up (allocator, kernels; compiles a compiled path)
        sync()
        first_s = time.perf_counter() - t0
        step()
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            sync()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 2:
                break
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss.peak - rss0
    return {"img_per_s": n * batch / elapsed, "peak_mem_mb": peak_mb, "first_call_s": first_s, "max_abs_diff": check}


def gemm_ceiling(device: str, precision: str, seconds: float) -> float:
    """GFLOP/s of the best of repeated ``CEILING_SIDE``-square ``torch.mm`` calls in fp32 or bf16."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(CEILING_SIDE, CEILING_SIDE, device=device).to(dtype)
    b = torch.randn(CEILING_SIDE, CEILING_SIDE, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best, t_end = float("inf"), time.perf_counter() + seconds
    with torch.inference_mode():
        torch.mm(a, b)
        while time.perf_counter() < t_end:
            sync()
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync()
            best = min(best, time.perf_counter() - t0)
    return 2 * CEILING_SIDE**3 / best / 1e9


def _worker(spec: dict) -> dict:
    kind = spec.pop("kind")
    if kind == "ceiling":
        return {"gflop_s": gemm_ceiling(**spec)}
    if kind == "flops":
        return {"gflop": gflop_per_image(encoders.create_model(spec["model_name"]).eval(), spec["size"])}
    return run_path(**spec)


def _in_subprocess(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.encoder_throughput", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--official-src",
        default=os.environ.get("DINOV2_SRC"),
        help="checkout of facebookresearch/dinov2 (default $DINOV2_SRC); without it the official rows are skipped",
    )
    parser.add_argument("--compile", action="store_true", help="also time the project paths through torch.compile")
    parser.add_argument("--seconds", type=float, default=6.0, help="minimum timed seconds per path")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return

    if args.official_src is not None and not (Path(args.official_src) / "dinov2" / "models").is_dir():
        parser.error(f"--official-src {args.official_src} is not a checkout of facebookresearch/dinov2")
    paths = [p for p in PATHS if args.official_src is not None or not p.startswith("official")]
    paths += list(COMPILED) if args.compile else []
    ceiling = {
        p: _in_subprocess(dict(kind="ceiling", device=args.device, precision=p, seconds=3.0)) for p in ("fp32", "bf16")
    }
    threads = torch.get_num_threads()
    print(f"device={args.device} size={args.size} torch={torch.__version__} threads={threads}")
    print(
        f"GEMM ceiling ({CEILING_SIDE}^3 torch.mm, best of 3 s): fp32 {ceiling['fp32']['gflop_s']:.0f} GFLOP/s, "
        f"bf16 {ceiling['bf16']['gflop_s']:.0f} GFLOP/s\n"
    )
    print(
        "| model | batch | path | img/s | x project fp32 | x official fp32 | GFLOP/s | GEMM ceiling share | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for model in args.models:
        gflop = _in_subprocess(dict(kind="flops", model_name=model, size=args.size))["gflop"]
        for batch in args.batches:
            results = {}
            for path in paths:
                spec = dict(kind="path", model_name=model, batch=batch, size=args.size, device=args.device, path=path,
                            seconds=args.seconds, official_src=args.official_src)  # fmt: skip
                results[path] = _in_subprocess(spec)
            base = results["project fp32"]["img_per_s"]
            official = results["official fp32"]["img_per_s"] if "official fp32" in results else float("nan")
            for path, r in results.items():
                dtype = "bf16" if "bf16" in path else "fp32"
                share = r["img_per_s"] * gflop / ceiling[dtype]["gflop_s"]
                print(
                    f"| {model} | {batch} | {path} | {r['img_per_s']:.1f} | {r['img_per_s'] / base:.2f} | "
                    f"{r['img_per_s'] / official:.2f} | {r['img_per_s'] * gflop:.0f} | {share:.0%} | "
                    f"{r['peak_mem_mb']:.0f} |",
                    flush=True,
                )
                if r["max_abs_diff"] is not None and batch == args.batches[0]:
                    notes.append(f"{model} {path}: max |official - project| of the cls token {r['max_abs_diff']:.1e}")
                if path.endswith("compiled"):
                    notes.append(f"{model} batch {batch} {path}: first call (compilation) {r['first_call_s']:.1f} s")
        notes.append(f"{model}: {gflop:.2f} GFLOP per {args.size}-px image (torch.utils.flop_counter)")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
