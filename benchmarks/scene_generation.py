"""Speed of the procedural scenes: generation, colour variants (all objects or a few), a noisy TV's frame pool, single
objects, export.

    python -m benchmarks.scene_generation [--scenes 100] [--threads 0]

Prints a markdown table. Every row is timed in this run (best of ``--repeats`` passes over ``--scenes`` scenes),
and the ratio column compares each row with ``generate`` at 448 px from the same run.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from envs.scenes import OBJECT_CLASSES, SceneGenerator, render_object
from envs.scenes.layout import background_of
from envs.scenes.object_set import sample_object
from envs.tv import DEFAULT_TV_FRAMES, build_tv


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=100, help="scenes per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement (best is reported)")
    parser.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0: OpenCV default)")
    args = parser.parse_args(argv)
    if args.threads:
        cv2.setNumThreads(args.threads)
    n, r = args.scenes, args.repeats
    ids = range(n)
    gen448, gen224 = SceneGenerator(image_size=448), SceneGenerator(image_size=224, object_size=(18, 36))
    scenes = gen448.generate_many(ids)
    n_obj = sum(len(s.objects) for s in scenes) / n

    rows: list[tuple[str, float, str]] = []  # (what, seconds per unit, unit)
    rows.append(("generate 448x448", _best(lambda: gen448.generate_many(ids), r) / n, "scene"))
    rows.append(("  layout sampling only", _best(lambda: [gen448.sample_layout(i) for i in ids], r) / n, "scene"))
    rows.append(("  background only", _best(lambda: [background_of(s.layout) for s in scenes], r) / n, "scene"))
    rows.append(("generate 224x224", _best(lambda: gen224.generate_many(ids), r) / n, "scene"))
    for k in (4, 8):
        t = _best(lambda k=k: [gen448.colour_variants(s, k) for s in scenes], r) / n
        rows.append((f"colour_variants K={k}, all objects", t, "scene"))
        t = _best(lambda k=k: [gen448.colour_variants(s, k, [0, 1]) for s in scenes], r) / n
        rows.append((f"colour_variants K={k}, 2 objects", t, "scene"))
    tv_scenes = SceneGenerator(image_size=168, object_size=(14, 27), n_objects=(3, 6)).generate_many(ids)
    for mode in ("spontaneous", "colour", "class"):
        t = _best(lambda mode=mode: build_tv(tv_scenes, mode, 14, (12, 12), DEFAULT_TV_FRAMES), r) / n
        rows.append((f"TV frame pool 168 px, {DEFAULT_TV_FRAMES} frames, {mode}", t, "scene"))
    rows.append(("recolour 1 object", _best(lambda: [gen448.recolour(s, 1, [0]) for s in scenes], r) / n, "scene"))
    classes = [OBJECT_CLASSES[i % len(OBJECT_CLASSES)] for i in ids]
    t = _best(lambda: [render_object(c, (200, 60, 60), image_size=112) for c in classes], r) / n
    rows.append(("render_object 112 px, plain", t, "object"))
    t = _best(lambda: [sample_object(c, i, "train") for i, c in enumerate(classes)], r) / n
    rows.append(("object-set sample 112 px", t, "object"))
    with tempfile.TemporaryDirectory() as tmp:
        from envs.scenes.export import export_scenes

        t = _best(lambda: export_scenes(gen448, Path(tmp), n, progress=False), 1) / n
    rows.append(("export 448 (generate + PNG level 1)", t, "scene"))

    base = rows[0][1]
    cpu = platform.processor() or platform.machine()
    threads = cv2.getNumThreads()
    print(f"Scenes benchmark: {n} scenes (mean {n_obj:.1f} objects), best of {r}; {cpu}, cv2 threads {threads}")
    print()
    print("| what | ms per unit | units/s | ratio to generate 448 |")
    print("|---|---:|---:|---:|")
    for what, sec, unit in rows:
        print(f"| {what} | {sec * 1e3:.2f} / {unit} | {1 / sec:.0f} | {sec / base:.2f} |")
    k8 = next(sec for what, sec, _ in rows if what == "colour_variants K=8, 2 objects")
    print(f"\n100s of scenes x K=8 variants of 2 objects: {300 * k8:.1f} s for 300 scenes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
