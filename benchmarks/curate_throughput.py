"""Wall time of ``experiments.curate`` on a folder of 224-px images, ``--precision fp32`` against ``bf16``.

The folder holds ``--images`` procedural scenes (``envs.scenes.SceneGenerator``, 224 px, JPEG), written once to
``--workdir``. Each precision runs the whole CLI in a fresh process (``python -m experiments.curate``: start-up,
model build, decoding, embedding, de-duplication, the selection files) with a fresh output folder, so no
embedding cache is reused; the table gives the process wall time, the pipeline's own ``seconds`` (from
``summary.json``) and the bf16 speed-up on both, measured in the same run.

    python -m benchmarks.curate_throughput                                  # dinov2_vits14, 256 images
    python -m benchmarks.curate_throughput --encoder vit_tiny_patch14 --images 512 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import torch

from envs.scenes import SceneGenerator


def write_pool(folder: Path, n: int, size: int) -> Path:
    """``n`` procedural ``size``-px scenes as JPEGs in ``folder`` (kept when already complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == n:
        return folder
    generator = SceneGenerator(image_size=size)
    for i in range(n):
        image = generator.generate(i).image
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def run_curate(pool: Path, output: Path, encoder: str, precision: str, size: int, batch: int) -> tuple[float, float]:
    """(process wall seconds, pipeline seconds) of one ``experiments.curate`` run."""
    shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-m", "experiments.curate", "--pool", str(pool), "--output", str(output)]
    cmd += ["--encoder", encoder, "--image-size", str(size), "--batch-size", str(batch), "--k-per-seed", "0"]
    cmd += ["--precision", precision, "--device", "cpu"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, float(json.loads((output / "summary.json").read_text())["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="dinov2_vits14")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="runs per precision, alternating; the best is kept")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/semnav_curate_bench"))
    args = parser.parse_args(argv)

    pool = write_pool(args.workdir / f"pool_{args.size}px_{args.images}", args.images, args.size)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for precision in ("fp32", "bf16"):
            wall, seconds = run_curate(
                pool, args.workdir / f"out_{precision}", args.encoder, precision, args.size, args.batch_size
            )
            if precision not in best or wall < best[precision][0]:
                best[precision] = (wall, seconds)
    print(f"curate: {args.images} images of {args.size} px, {args.encoder}, batch {args.batch_size}, cpu, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")  # fmt: skip
    print("| precision | wall s (process) | pipeline s | speed-up (wall) | speed-up (pipeline) | images/s (wall) |")
    print("|---|---|---|---|---|---|")
    for precision, (wall, seconds) in best.items():
        print(
            f"| {precision} | {wall:.1f} | {seconds:.1f} | {best['fp32'][0] / wall:.2f} | "
            f"{best['fp32'][1] / seconds:.2f} | {args.images / wall:.1f} |"
        )


if __name__ == "__main__":
    main()
