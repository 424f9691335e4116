"""Evaluate a frozen encoder: k-NN and linear-probe top-1 next to random-init and raw-pixel baselines, plus PCA maps.

    python -m experiments.eval_encoder --encoder vit_tiny_patch14 --weights runs/pretrain/x/backbone.pth --synthetic
    python -m experiments.eval_encoder --encoder vits14 --weights official --data /data/my_set   # train/ and val/
    python -m experiments.eval_encoder --encoder vit_mini_patch14 --weights a.pth --extra student=vit_pico_patch14:b.pth

``--data DIR`` holds ``train/`` and ``val/``, each with one sub-folder per class. ``--synthetic`` writes the
procedural labelled object set (``envs.scenes.object_set``: every image one object of random colour, size,
pose and background) into ``--synthetic-dir`` once and evaluates on it, so the protocol runs anywhere.
Every run writes ``results.json``, ``config.json`` and ``pca_<encoder>.png`` grids (image | PCA of its patch
features, background masked by the first component) to ``--output``, and prints the results table.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from encoders.data.augmentations import center_crop_transform
from encoders.data.image_folder import LabelledImageFolder
from encoders.eval.features import (
    FeatureSet,
    backbone_feature_fn,
    extract_features,
    gray_pixel_feature_fn,
    hog_feature_fn,
    load_frozen_encoder,
    patch_feature_grid,
    pixel_feature_fn,
)
from encoders.eval.knn import knn_evaluate
from encoders.eval.linear_probe import LinearProbeConfig
from encoders.eval.pca_grid import write_pca_grid
from encoders.eval.protocol import evaluate_frozen
from encoders.eval.report import EncoderScores, format_table, write_report
from encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from encoders.train.distributed import resolve_device
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import config_to_dict, parse_config, save_config
from encoders.utils.logging import setup_logging
from encoders.utils.precision import Precision, autocast_dtype, describe
from encoders.utils.seed import seed_everything

logger = logging.getLogger("experiments.eval_encoder")


@dataclass
class EvalConfig:
    """Evaluate a frozen encoder with k-NN and a linear probe on a labelled image folder."""

    encoder: str = "vit_tiny_patch14"
    """registry name of the encoder architecture (see encoders.list_models())"""
    weights: str | None = None
    """checkpoint file, 'official' (DINOv2 release download) or none (random init)"""
    data: Path | None = None
    """folder with train/ and val/ sub-folders, one sub-folder per class in each"""
    synthetic: bool = False
    """generate (once, cached) and use the procedural labelled object set instead of --data"""
    synthetic_dir: Path = Path("runs/cache/object_set")
    """cache folder of the synthetic object sets"""
    synthetic_train_per_class: int = 40
    """synthetic training images per class"""
    synthetic_val_per_class: int = 20
    """synthetic validation images per class"""
    synthetic_colour_mode: Literal["random", "fixed", "shift"] = "random"
    """'random': object colours randomised per image; 'fixed': one colour per class (colour-shortcut control);
    'shift': random colours with hues in [0, 0.5) turns for train and [0.5, 1) for val (colour-shift protocol: a
    colour shortcut learnt on train fails on val)"""
    synthetic_backgrounds: Literal["random", "plain"] = "random"
    """'random': a textured scene background or plain grey per image; 'plain': plain grey only (the object's shape
    is then the only cue)"""
    image_size: int = 112
    """images are resized (shorter side) and centre-cropped to this side; a multiple of the patch size"""
    batch_size: int = 64
    """images per forward pass"""
    num_workers: int = 0
    """DataLoader worker processes"""
    k: int = 20
    """k-NN neighbours"""
    temperature: float = 0.07
    """k-NN vote temperature: weights exp(cosine / T)"""
    pooling: Literal["cls", "cls+avgpool"] = "cls"
    """linear-probe input: the cls token, or the cls token concatenated with average-pooled patch tokens"""
    probe_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    """linear-probe learning rates, chosen on a 20% hold-out of train"""
    probe_epochs: int = 100
    """linear-probe epochs over the cached features"""
    probe_optimizer: Literal["adamw", "sgd"] = "adamw"
    """linear-probe optimiser"""
    baselines: bool = True
    """also evaluate the random-init encoder of the same architecture, raw RGB and gray pixels, and HOG"""
    pixel_size: int = 16
    """raw-pixel baselines: images area-downsampled to this side and flattened"""
    hog_cell: int = 14
    """HOG baseline: cell side in pixels (9 orientation bins, 2x2-cell blocks)"""
    extra: tuple[str, ...] = ()
    """more encoders in the same table, each LABEL=NAME:WEIGHTS (WEIGHTS: a file or 'official')"""
    output: Path | None = None
    """output folder (default runs/eval_encoder/<encoder>__<data>__<seed>__<time>)"""
    pca_images: int = 8
    """validation images in the PCA grids (0: no grids)"""
    foreground_threshold: float | None = 0.5
    """PCA maps: patches below this min-max-scaled first component are background (none: no masking)"""
    device: str = "auto"
    """auto, cpu or cuda"""
    precision: Precision = "auto"
    """feature extraction under bf16 autocast or in fp32 (auto: bf16 on CUDA and on CPUs with native bf16); the
    features stay fp32"""
    seed: int = 0
    """seed of the random-init baseline, the probe and the synthetic set"""


@dataclass
class EncoderEntry:
    """One encoder row to evaluate: a label, a registry name and its weights (None: random init)."""

    label: str
    name: str
    weights: str | None


def parse_extra(spec: str) -> EncoderEntry:
    """``LABEL=NAME:WEIGHTS`` -> :class:`EncoderEntry` (``ValueError`` naming the expected form otherwise)."""
    m = re.fullmatch(r"([^=]+)=([^:]+):(.+)", spec)
    if m is None:
        raise ValueError(f"--extra {spec!r}: expected LABEL=NAME:WEIGHTS, e.g. student=vit_pico_patch14:runs/x.pth")
    return EncoderEntry(m.group(1), m.group(2), m.group(3))


def synthetic_object_set(cfg: EvalConfig) -> Path:
    """The cached synthetic object set for ``cfg`` (``train/`` and ``val/``), written on first use.

    The folder name encodes every option that changes the images; a set is written to a temporary folder
    and renamed into place, so an interrupted run never leaves a half-written set behind.
    """
    from envs.scenes.object_set import PLAIN, write_object_set

    tag = (
        f"objects_s{cfg.image_size}_tr{cfg.synthetic_train_per_class}_va{cfg.synthetic_val_per_class}"
        f"_{cfg.synthetic_colour_mode}{'_plainbg' * (cfg.synthetic_backgrounds == 'plain')}_seed{cfg.seed}"
    )
    root = cfg.synthetic_dir / tag
    if (root / "train").is_dir() and (root / "val").is_dir():
        logger.info("using cached synthetic object set %s", root)
        return root
    tmp = cfg.synthetic_dir / f".{tag}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shift = cfg.synthetic_colour_mode == "shift"
    colour_mode = "random" if shift else cfg.synthetic_colour_mode
    options: dict[str, Any] = dict(seed=cfg.seed, image_size=cfg.image_size, colour_mode=colour_mode)
    if cfg.synthetic_backgrounds == "plain":
        options["backgrounds"] = (PLAIN,)
    train_hues, val_hues = ((0.0, 0.5), (0.5, 1.0)) if shift else ((0.0, 1.0), (0.0, 1.0))
    write_object_set(tmp / "train", cfg.synthetic_train_per_class, "train", hue_range=train_hues, **options)
    write_object_set(tmp / "val", cfg.synthetic_val_per_class, "val", hue_range=val_hues, **options)
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, root)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote synthetic object set to %s", root)
    return root


def load_splits(root: Path, image_size: int, patch_size: int | None) -> tuple[LabelledImageFolder, LabelledImageFolder]:
    """``root/train`` and ``root/val`` as labelled folders with the same classes and the eval transform."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"{root / split} not found; --data must hold train/ and val/ folders with one sub-folder per class "
                "(or pass --synthetic)"
            )
    transform = center_crop_transform(image_size, resize_size=image_size, patch_size=patch_size)
    train = LabelledImageFolder(root / "train", transform=transform)
    val = LabelledImageFolder(root / "val", transform=transform, classes=train.classes)
    return train, val


def background_labels(
    train: LabelledImageFolder, val: LabelledImageFolder
) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """Background index ``(N,)`` of every train and val image, and the background names, read from the object
    set's ``labels.jsonl`` (:func:`envs.scenes.object_set.write_object_set`). ``None`` when a split has no such
    labels or all images share one background (nothing to measure)."""
    from envs.scenes.object_set import read_object_labels

    names: list[list[str]] = []
    for split in (train, val):
        labels = read_object_labels(split.root)
        try:
            names.append([labels[path.relative_to(split.root).as_posix()]["background"] for path in split.samples])
        except (TypeError, KeyError, ValueError):  # no labels.jsonl, or it does not describe these files
            return None
    vocabulary = sorted({*names[0], *names[1]})
    if len(vocabulary) < 2:
        return None
    index = {name: i for i, name in enumerate(vocabulary)}
    train_bg, val_bg = (torch.tensor([index[n] for n in split], dtype=torch.int64) for split in names)
    return train_bg, val_bg, vocabulary


def _denormalise(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` normalised -> ``(B, H, W, 3)`` uint8 RGB (for figures)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (images.float().cpu() * std + mean).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def pca_figure(
    model: torch.nn.Module,
    dataset: LabelledImageFolder,
    n: int,
    path: Path,
    threshold: float | None,
    device,
    dtype: torch.dtype | None = None,
) -> Path:
    """PCA grid of ``n`` validation images spread evenly over the dataset (so over the classes)."""
    idx = np.linspace(0, len(dataset) - 1, num=min(n, len(dataset))).round().astype(int)
    images = torch.stack([dataset[int(i)][0] for i in idx])  # (n, 3, H, W)
    grid = patch_feature_grid(model, images.to(device), dtype)  # (n, h, w, D)
    return write_pca_grid(path, _denormalise(images), grid, threshold, ncols=4)


def run(cfg: EvalConfig) -> tuple[list[EncoderScores], Path]:
    """Evaluate every encoder of ``cfg`` -> (table rows, output folder)."""
    if cfg.data is None and not cfg.synthetic:
        raise ValueError("pass --data DIR (with train/ and val/ class folders) or --synthetic")
    if cfg.data is not None and cfg.synthetic:
        raise ValueError("pass either --data or --synthetic, not both")
    if cfg.baselines and (cfg.hog_cell < 2 or cfg.image_size % cfg.hog_cell or cfg.image_size < 2 * cfg.hog_cell):
        raise ValueError(
            f"--hog-cell {cfg.hog_cell} must divide --image-size {cfg.image_size} at least twice; "
            "e.g. the patch size 14"
        )
    device = resolve_device(cfg.device)
    dtype = autocast_dtype(cfg.precision, device)
    logger.info("feature extraction on %s in %s", device, describe(dtype))
    if cfg.weights is None:
        entries = [EncoderEntry(f"{cfg.encoder} (random init)", cfg.encoder, None)]
    else:
        source = "official" if cfg.weights == "official" else Path(cfg.weights).name
        entries = [EncoderEntry(f"{cfg.encoder} ({source})", cfg.encoder, cfg.weights)]
    entries += [parse_extra(spec) for spec in cfg.extra]
    if cfg.weights is not None and cfg.baselines:
        entries.insert(0, EncoderEntry(f"{cfg.encoder} (random init)", cfg.encoder, None))
    models = {}
    for entry in entries:  # load everything first: bad paths fail before any feature extraction
        seed_everything(cfg.seed)
        models[entry.label] = load_frozen_encoder(entry.name, entry.weights, device)
    patch = models[entries[0].label].patch_size
    root = synthetic_object_set(cfg) if cfg.synthetic else Path(cfg.data)  # type: ignore[arg-type]
    train, val = load_splits(root, cfg.image_size, patch)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = cfg.output or Path("runs/eval_encoder") / f"{_slug(cfg.encoder)}__{_slug(root.name)}__{cfg.seed}__{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    probe = LinearProbeConfig(lrs=cfg.probe_lrs, epochs=cfg.probe_epochs, optimizer=cfg.probe_optimizer, seed=cfg.seed)
    num_classes = len(train.classes)
    rows: list[EncoderScores] = []

    def features(fn, split: LabelledImageFolder, desc: str) -> FeatureSet:
        return extract_features(fn, split, cfg.batch_size, cfg.num_workers, device, desc=desc)

    backgrounds = background_labels(train, val)

    def add_background_knn(row: EncoderScores, train_f: FeatureSet, val_f: FeatureSet, name: str) -> None:
        if backgrounds is not None:
            bg_train, bg_val, vocabulary = backgrounds
            x_train, x_val = train_f.features[name], val_f.features[name]
            knn = knn_evaluate(x_train, bg_train, x_val, bg_val, cfg.k, cfg.temperature, len(vocabulary))
            row.background_knn_top1 = knn.top1

    if cfg.baselines:
        px = f"{cfg.pixel_size}x{cfg.pixel_size}"
        hand_made = (
            (f"raw pixels {px}", "pixels", pixel_feature_fn(cfg.pixel_size)),
            (f"gray pixels {px}", "gray_pixels", gray_pixel_feature_fn(cfg.pixel_size)),
            (f"HOG ({cfg.hog_cell} px cells, 9 bins)", "hog", hog_feature_fn(cfg.hog_cell)),
        )
        knn = dict(k=cfg.k, temperature=cfg.temperature, probe=probe)
        for label, name, fn in hand_made:
            train_x, val_x = features(fn, train, f"{name}/train"), features(fn, val, f"{name}/val")
            rows.append(evaluate_frozen(label, train_x, val_x, num_classes, name, name, **knn))
            add_background_knn(rows[-1], train_x, val_x, name)
    for entry in entries:
        model = models[entry.label]
        fn = backbone_feature_fn(model, dtype)
        train_f, val_f = features(fn, train, f"{entry.label}/train"), features(fn, val, f"{entry.label}/val")
        row = evaluate_frozen(
            entry.label, train_f, val_f, num_classes, "cls", cfg.pooling, cfg.k, cfg.temperature, probe
        )
        add_background_knn(row, train_f, val_f, "cls")
        row.extra = {"name": entry.name, "weights": entry.weights}
        if cfg.pca_images > 0:
            path = out / f"pca_{_slug(entry.label)}.png"
            png = pca_figure(model, val, cfg.pca_images, path, cfg.foreground_threshold, device, dtype)
            row.extra["pca_png"] = str(png)
        rows.append(row)
    meta = {
        "data": str(root),
        "classes": train.classes,
        "n_train": len(train),
        "n_val": len(val),
        "image_size": cfg.image_size,
        "precision": describe(dtype),
        "backgrounds": None if backgrounds is None else backgrounds[2],
        "k": cfg.k,
        "temperature": cfg.temperature,
        "config": config_to_dict(cfg),
    }
    write_report(rows, out / "results.json", meta)
    return rows, out


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(EvalConfig, argv, description=__doc__.split("\n\n")[0])
    setup_logging()
    try:
        rows, out = run(cfg)
    except CLI_ERRORS as e:
        return report_error(e)
    print(format_table(rows))
    print(f"wrote {out / 'results.json'} and PCA grids to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
