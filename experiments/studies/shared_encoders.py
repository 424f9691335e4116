"""The encoders the studies share, built once into ``--encoders-dir`` and reused: the tiny pretrained
``vit_mini_patch14`` teacher and its distilled ``vit_pico_patch14`` student."""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger("experiments.studies")

#: Where the shared encoders (tiny pretrained teacher, distilled student) are built once and reused.
DEFAULT_ENCODERS_DIR = Path("runs/studies/encoders")


def pretrained_encoder(encoders_dir: Path, image_size: int = 168, seed: int = 0) -> Path:
    """The tiny pretrained ``vit_mini_patch14`` teacher backbone, pretrained once with the demo recipe
    (``experiments.two_phase.pretrain_demo_encoder``: 512 procedural train-split scenes, pretrain preset ``tiny``)
    into ``encoders_dir/pretrain`` and reused when ``run/teacher_backbone.pth`` exists."""
    from experiments.studies.two_phase_runs import two_phase_config
    from experiments.two_phase import pretrain_demo_encoder

    weights = encoders_dir / "pretrain" / "run" / "teacher_backbone.pth"
    if weights.exists():
        return weights
    # pretrain preset pinned to ``tiny`` (300 iterations): the encoder of the README's study tables (the demo itself
    # now pretrains with the shorter ``demo`` preset)
    cfg = two_phase_config("demo", {"pretrain_preset": "tiny", "image_size": image_size, "seed": seed})
    return pretrain_demo_encoder(cfg, encoders_dir / "pretrain")


def distilled_student(encoders_dir: Path, teacher_dir: Path, epochs: int = 0) -> tuple[Path | None, str]:
    """The ``vit_pico_patch14`` student distilled (``experiments.distill --preset tiny``; ``epochs`` > 0 replaces
    the preset's 12 epochs of 25 iterations, the whole schedule shortened) from the pretraining run in
    ``teacher_dir`` on its images, built once into ``encoders_dir/distill``; ``(None, why)`` on failure."""
    weights = encoders_dir / "distill" / "student_backbone.pth"
    if weights.exists():
        return weights, ""
    try:
        from experiments import distill
    except Exception as e:  # the distillation CLI is optional for the studies
        return None, f"experiments.distill not importable: {e}"
    argv = [
        "--preset",
        "tiny",
        "--teacher-weights",
        str(teacher_dir / "run" / "checkpoint.pth"),
        "--data",
        str(teacher_dir / "images"),
        "--output",
        str(encoders_dir / "distill"),
        "--train.device",
        "cpu",
    ]
    if epochs > 0:
        argv += ["--optim.epochs", str(epochs)]
    if (encoders_dir / "distill" / "checkpoint.pth").exists():
        argv.append("--resume")
    t0 = time.perf_counter()
    try:
        rc = distill.main(argv)
    except Exception as e:
        return None, f"experiments.distill failed: {type(e).__name__}: {e}"
    finally:
        from encoders.utils.logging import setup_logging

        setup_logging()
    if rc != 0 or not weights.exists():
        return None, f"experiments.distill exited with code {rc}"
    logger.info("distilled student in %.0f s: %s", time.perf_counter() - t0, weights)
    return weights, ""


__all__ = ["DEFAULT_ENCODERS_DIR", "distilled_student", "pretrained_encoder"]
