"""Study 1, encoder colour invariance: is an object's feature closer to itself in another colour than to another
object in the same colour? And does k-NN classification survive randomised colours?

    python -m experiments.studies.invariance --budget cpu --out runs/studies/invariance
    python -m experiments.studies.invariance --budget cpu --official-weights official   # + DINOv2 ViT-S/14

Encoders: raw pixels (16x16 thumbnails, the baseline), HOG (Dalal & Triggs 2005, 14 px cells, 9 bins: the strong
hand-made baseline), a random-init ``vit_mini_patch14``, the tiny pretrained
``vit_mini_patch14`` (DINOv2 recipe on procedural scenes, built once into ``--encoders-dir``), the distilled
``vit_pico_patch14`` student, and ``--official-arch`` with ``--official-weights`` when given. Features: the
normalised CLS token and the mean patch token (what the navigation environment pools).

Per seed (a fresh draw of objects and colours, and of the random init):

- cosine similarity, on the synthetic object set (``envs.scenes.object_set.sample_object``, same pose, size and
  background with ``colour=...``): *same object, other colour* (all colour pairs of one object), *other class,
  same colour* (objects of different classes drawn in the same colour) and *same class, other object, other
  colour* (the ObjectNav situation: a different instance of the goal class in another colour). The *margin* is
  same-object/other-colour minus other-class/same-colour: > 0 means shape dominates colour. The same numbers are
  also computed on *centred* features (the seed's mean pair-image feature subtracted), because an anisotropic
  feature space puts every raw cosine near 1.
- k-NN top-1 (k=20, T=0.07) with colours randomised in both train and test (``random -> random``) and with
  one fixed colour per class in train but random colours in test (``fixed -> random``, the colour-shortcut trap).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from experiments.studies.config import parse_study_config
from experiments.studies.figures import bar_chart, new_figure, save_figure
from experiments.studies.outputs import markdown_table, write_outputs
from experiments.studies.shared_encoders import DEFAULT_ENCODERS_DIR, distilled_student, pretrained_encoder
from techniques.rl_navigation.statistics import fmt_ci, mean_ci

logger = logging.getLogger("experiments.studies.invariance")

FeatureFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
_SIM = ("same_object_other_colour", "other_class_same_colour", "same_class_other_colour", "margin")
#: Raw cosine similarities, and the same after subtracting the mean feature of the pair images ("centred": removes
#: the common direction that makes every cosine of an anisotropic feature space close to 1).
SIMILARITIES = (*_SIM, *(f"{k}_centred" for k in _SIM))
KNN = ("knn_random_random", "knn_fixed_random")


@dataclass
class InvarianceConfig:
    """Colour invariance of frozen encoders on the synthetic object set (cosine similarities and k-NN)."""

    out: Path = Path("runs/studies/invariance")
    """output folder"""
    budget: str = "cpu"
    """budget name (set by --budget: smoke | cpu)"""
    seeds: int = 5
    """seeds (object / colour draws and random init)"""
    encoders_dir: Path = DEFAULT_ENCODERS_DIR
    """shared encoders (tiny pretrained teacher, distilled student): built here once, reused when present"""
    build_encoders: bool = True
    """build the shared encoders when missing (off: use only those already in --encoders-dir)"""
    distill_epochs: int = 6
    """epochs (of 25 iterations) of the student's distillation when it is built (0: the tiny preset's 12)"""
    official_weights: str | None = None
    """checkpoint of --official-arch ('official' downloads the DINOv2 release); none: skip that row"""
    official_arch: str = "dinov2_vits14"
    """registry name of the official checkpoint's architecture"""
    official_label: str = "official"
    """name of the --official-weights row (e.g. 'laptop-pretrained' for a checkpoint of this project's own)"""
    random_arch: str = "vit_mini_patch14"
    """architecture of the random-init baseline (the pretrained encoder's)"""
    image_size: int = 112
    """object image side (a multiple of 14)"""
    classes: int = 12
    """object classes used (the first N of envs.scenes.types.OBJECT_CLASSES)"""
    pair_objects: int = 4
    """objects per class in the similarity study"""
    pair_colours: int = 4
    """colours each object is drawn in"""
    knn_train_per_class: int = 40
    """k-NN training images per class"""
    knn_val_per_class: int = 20
    """k-NN test images per class"""
    knn_k: int = 20
    """k-NN neighbours"""
    pair_backgrounds: tuple[str, ...] = ("plain",)
    """backgrounds of the similarity images ('plain' grey: only colour, shape and pose differ; the k-NN sets
    use every background)"""
    pixel_size: int = 16
    """side of the raw-pixel thumbnails"""
    batch_size: int = 64
    """images per encoder call"""
    device: str = "cpu"
    """device of the encoders"""


BUDGETS = {
    "smoke": {
        "seeds": 2,
        "build_encoders": False,
        "classes": 3,
        "pair_objects": 2,
        "pair_colours": 2,
        "knn_train_per_class": 4,
        "knn_val_per_class": 2,
        "knn_k": 3,
        "random_arch": "vit_pico_patch14",
    },
    "cpu": {},
}


def encoder_feature_fn(model: torch.nn.Module) -> FeatureFn:
    """``images -> {"cls", "patch_mean"}`` of a frozen backbone."""
    from encoders.eval.features import backbone_feature_fn

    return backbone_feature_fn(model)


def features_of(fn: FeatureFn, images: np.ndarray, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    """Features ``{name: (N, D)}`` of ``uint8`` images ``(N, S, S, 3)``."""
    from encoders.preprocessing import images_to_tensor

    chunks: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out = fn(images_to_tensor(images[start : start + batch_size], device=device))
            for name, value in out.items():
                chunks.setdefault(name, []).append(value.float().cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def pair_images(cfg: InvarianceConfig, seed: int) -> np.ndarray:
    """``(C, O, K, S, S, 3)``: ``O`` objects of each of ``C`` classes, each drawn in the same ``K`` colours."""
    from envs.scenes.object_set import sample_object
    from envs.scenes.palette import random_colour
    from envs.scenes.types import OBJECT_CLASSES

    rng = np.random.default_rng([0xC010, seed])
    colours = [random_colour(rng) for _ in range(cfg.pair_colours)]
    bg = tuple(cfg.pair_backgrounds)
    out = [
        [
            [
                sample_object(c, o, "test", seed=seed, image_size=cfg.image_size, colour=col, backgrounds=bg).image
                for col in colours
            ]
            for o in range(cfg.pair_objects)
        ]
        for c in OBJECT_CLASSES[: cfg.classes]
    ]
    return np.asarray(out, dtype=np.uint8)


def similarity_stats(features: torch.Tensor) -> dict[str, float]:
    """Mean cosine similarities of ``(C, O, K, D)`` features (C classes, O objects, K colours); see the docstring."""
    c, o, k, d = features.shape
    f = F.normalize(features.reshape(-1, d).float(), dim=1)
    sim = (f @ f.T).reshape(c, o, k, c, o, k)
    ci, oi, ki = (torch.arange(n) for n in (c, o, k))
    same_class = ci[:, None, None, None, None, None] == ci[None, None, None, :, None, None]
    same_obj = same_class & (oi[None, :, None, None, None, None] == oi[None, None, None, None, :, None])
    same_col = ki[None, None, :, None, None, None] == ki[None, None, None, None, None, :]
    shape = (c, o, k, c, o, k)
    same_class, same_obj, same_col = (m.expand(shape) for m in (same_class, same_obj, same_col))
    out = {
        "same_object_other_colour": float(sim[same_obj & ~same_col].mean()) if k > 1 else float("nan"),
        "other_class_same_colour": float(sim[~same_class & same_col].mean()) if c > 1 else float("nan"),
        "same_class_other_colour": float(sim[same_class & ~same_obj & ~same_col].mean())
        if o > 1 and k > 1
        else float("nan"),
    }
    out["margin"] = out["same_object_other_colour"] - out["other_class_same_colour"]
    return out


def knn_scores(fn: FeatureFn, cfg: InvarianceConfig, seed: int, sets: dict[str, tuple]) -> dict[str, dict[str, float]]:
    """k-NN top-1 per feature name for ``random -> random`` and ``fixed -> random``."""
    from encoders.eval.knn import knn_evaluate

    feats = {name: features_of(fn, images, cfg.batch_size, cfg.device) for name, (images, _) in sets.items()}
    labels = {name: torch.as_tensor(lab) for name, (_, lab) in sets.items()}
    out: dict[str, dict[str, float]] = {}
    for fname in feats["val"]:
        for key, train in (("knn_random_random", "train_random"), ("knn_fixed_random", "train_fixed")):
            r = knn_evaluate(
                feats[train][fname], labels[train], feats["val"][fname], labels["val"], cfg.knn_k, 0.07, cfg.classes
            )
            out.setdefault(fname, {})[key] = r.top1
    return out


def knn_sets(cfg: InvarianceConfig, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train (random colours; fixed colour per class) and test (random colours) object sets of a seed."""
    from envs.scenes.object_set import make_object_set
    from envs.scenes.types import OBJECT_CLASSES

    classes = OBJECT_CLASSES[: cfg.classes]
    kw = {"seed": seed, "image_size": cfg.image_size, "classes": classes}
    tr = make_object_set(cfg.knn_train_per_class, "train", **kw)
    fx = make_object_set(cfg.knn_train_per_class, "train", colour_mode="fixed", **kw)
    va = make_object_set(cfg.knn_val_per_class, "val", **kw)
    return {"train_random": tr[:2], "train_fixed": fx[:2], "val": va[:2]}


def encoder_list(cfg: InvarianceConfig) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """``[(label, arch, weights)]`` of the encoders to evaluate (pixels excluded) and notes on skipped ones."""
    notes: list[str] = []
    rows: list[tuple[str, str, str | None]] = [(f"random init ({cfg.random_arch})", cfg.random_arch, None)]
    teacher = cfg.encoders_dir / "pretrain" / "run" / "teacher_backbone.pth"
    if cfg.build_encoders and not teacher.exists():
        teacher = pretrained_encoder(cfg.encoders_dir)
    if teacher.exists():
        rows.append(("tiny pretrained (vit_mini_patch14)", "vit_mini_patch14", str(teacher)))
    else:
        notes.append(f"tiny pretrained encoder skipped: {teacher} missing (budget {cfg.budget} builds none)")
    student = cfg.encoders_dir / "distill" / "student_backbone.pth"
    if cfg.build_encoders and not student.exists() and teacher.exists():
        built, why = distilled_student(cfg.encoders_dir, cfg.encoders_dir / "pretrain", cfg.distill_epochs)
        if built is None:
            notes.append(f"distilled student skipped: {why}")
        student = built or student
    if student.exists():
        rows.append(("distilled student (vit_pico_patch14)", "vit_pico_patch14", str(student)))
    elif cfg.build_encoders is False:
        notes.append(f"distilled student skipped: {student} missing")
    if cfg.official_weights:
        rows.append((f"{cfg.official_label} {cfg.official_arch}", cfg.official_arch, cfg.official_weights))
    else:
        notes.append("no official checkpoint row: pass --official-weights PATH (or 'official') to add one")
    return rows, notes


def run_seed(cfg: InvarianceConfig, seed: int, rows: Sequence[tuple[str, str, str | None]]) -> dict[str, dict]:
    """All numbers of one seed: ``{row label: {metric: value}}`` (a row per encoder and feature)."""
    from encoders.eval.features import hog_feature_fn, load_frozen_encoder, pixel_feature_fn

    pairs = pair_images(cfg, seed)
    c, o, k = pairs.shape[:3]
    flat = pairs.reshape(-1, *pairs.shape[3:])
    sets = knn_sets(cfg, seed)
    fns: list[tuple[str, FeatureFn]] = [("pixels", pixel_feature_fn(cfg.pixel_size)), ("HOG", hog_feature_fn())]
    for label, arch, weights in rows:
        torch.manual_seed(seed)  # the random init differs per seed
        model = load_frozen_encoder(arch, weights, cfg.device)
        fns.append((label, encoder_feature_fn(model)))
    out: dict[str, dict] = {}
    for label, fn in fns:
        feats = features_of(fn, flat, cfg.batch_size, cfg.device)
        knn = knn_scores(fn, cfg, seed, sets)
        for fname, f in feats.items():
            row = label if len(feats) == 1 else f"{label} [{fname}]"
            centred = {f"{m}_centred": v for m, v in similarity_stats((f - f.mean(0)).reshape(c, o, k, -1)).items()}
            out[row] = {**similarity_stats(f.reshape(c, o, k, -1)), **centred, **knn[fname]}
    return out


def summarize(raw: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{row: {metric: mean_ci}}`` over seeds."""
    rows = next(iter(raw.values())).keys()
    return {row: {m: mean_ci([raw[s][row][m] for s in raw]) for m in (*SIMILARITIES, *KNN)} for row in rows}


def table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """The markdown results table (mean ± 95% t-interval over seeds)."""
    header = [
        "encoder [feature]",
        "cos same object, other colour",
        "cos other class, same colour",
        "margin",
        "cos same class, other colour",
        "margin, centred",
        "centred cos same class, other colour",
        "k-NN random→random",
        "k-NN fixed→random",
    ]
    order = (
        "same_object_other_colour",
        "other_class_same_colour",
        "margin",
        "same_class_other_colour",
        "margin_centred",
        "same_class_other_colour_centred",
        "knn_random_random",
        "knn_fixed_random",
    )
    return markdown_table(header, [[row, *(fmt_ci(s[m]) for m in order)] for row, s in summary.items()])


def figure(summary: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """Margins (left) and k-NN accuracies (right) per encoder row, with 95% intervals."""
    rows = list(summary)
    short = [r.replace(" (vit_mini_patch14)", "").replace(" (vit_pico_patch14)", "") for r in rows]
    short = [s.replace(" (vit_mini_patch14)", "").replace("(vit_pico_patch14)", "") for s in short]
    fig, (a, b) = new_figure(2, width=5.0, height=3.4)
    margins = {"raw": [summary[r]["margin"] for r in rows], "centred": [summary[r]["margin_centred"] for r in rows]}
    bar_chart(a, short, margins, "cos(same obj) − cos(same colour)")
    a.legend(fontsize=7)
    a.axhline(0, color="k", lw=0.6)
    a.set_title("colour invariance margin", fontsize=9)
    bar_chart(
        b,
        short,
        {
            "random→random": [summary[r]["knn_random_random"] for r in rows],
            "fixed→random": [summary[r]["knn_fixed_random"] for r in rows],
        },
        "k-NN top-1",
    )
    b.legend(fontsize=7)
    b.set_title("k-NN, test colours random", fontsize=9)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.logging import setup_logging

    cfg = parse_study_config(InvarianceConfig, argv, BUDGETS, __doc__.split("\n\n")[0])
    setup_logging()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    rows, notes = encoder_list(cfg)
    t_enc = time.perf_counter() - t0
    raw = {}
    for seed in range(cfg.seeds):
        logger.info("invariance: seed %d / %d", seed + 1, cfg.seeds)
        raw[str(seed)] = run_seed(cfg, seed, rows)
    summary = summarize(raw)
    wall = time.perf_counter() - t0
    if t_enc > 1:
        notes.append(f"building the shared encoders took {t_enc / 60:.1f} min of the wall time")
    text = table(summary)
    write_outputs(cfg.out, cfg, raw, {"summary": summary, "encoders": [r[0] for r in rows]}, text, wall, notes)
    figure(summary, cfg.out / "invariance.png")
    print(text)
    print(f"invariance: {cfg.seeds} seeds in {wall:.0f} s -> {cfg.out}")
    return 0


__all__ = ["BUDGETS", "InvarianceConfig", "main", "run_seed", "similarity_stats", "summarize"]

if __name__ == "__main__":
    sys.exit(main())
