"""Curate an image pool around seed images: embed, remove near-duplicates, retrieve k per seed, balance by k-means.

    python -m experiments.curate --pool /data/uncurated --seeds /data/curated --encoder vit_tiny_patch14 \\
        --weights runs/pretrain/x/backbone.pth --output runs/curate/v1 --dedup-threshold 0.95 --k-per-seed 50
    python -m experiments.curate ... --kmeans-clusters 100 --per-cluster 20     # cap every visual mode
    python -m experiments.curate --pool DIR --seeds DIR --encoder pixels --output OUT  # raw-pixel embeddings
    python -m experiments.pretrain --file-list runs/curate/v1/selected.txt ...        # train on the selection

Steps: (1) embed every pool and seed image (streamed in batches; embeddings are unit float16 rows kept as
``.npy`` memmaps in ``--output`` and reused by a later run with the same files and encoder); (2) remove pool
near-duplicates (connected components of cosine >= ``--dedup-threshold``; the first file of each group
stays); (3) retrieve the ``--k-per-seed`` nearest remaining pool images of every seed (``0``: keep the whole
de-duplicated pool); (4) optionally cluster the de-duplicated pool with k-means and keep at most
``--per-cluster`` of the selected images per cluster. Writes ``selected.txt`` (absolute paths, one per line:
a file list for ``ImageFolderDataset(file_list=...)`` / ``experiments.pretrain --file-list``),
``duplicates.tsv`` (each removed file and the kept file of its group) and ``summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from encoders.curation import balanced_sample, deduplicate, embed_images, kmeans, load_embeddings, retrieve_nearest
from encoders.curation.embed import Embeddings, EmbedFn
from encoders.data.augmentations import center_crop_transform
from encoders.eval.features import backbone_feature_fn, load_frozen_encoder, pixel_features
from encoders.preprocessing import scan_image_files
from encoders.train.distributed import resolve_device
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import (
    AT_LEAST_1,
    NON_NEGATIVE,
    Range,
    check_fields,
    config_to_dict,
    parse_config,
    save_config,
)
from encoders.utils.io import atomic_write_text
from encoders.utils.logging import setup_logging
from encoders.utils.precision import Precision, autocast_dtype, describe

logger = logging.getLogger("experiments.curate")

PIXELS = "pixels"


@dataclass
class CurateConfig:
    """Select pool images close to curated seeds, without near-duplicates, optionally balanced by k-means."""

    pool: Path | None = None
    """folder of uncurated images (searched recursively)"""
    seeds: Path | None = None
    """folder of curated seed images (searched recursively); none: keep the whole de-duplicated pool"""
    output: Path | None = None
    """output folder (selected.txt, summary.json, duplicates.tsv, embedding caches)"""
    encoder: str = "vit_tiny_patch14"
    """registry name of the embedding encoder, or 'pixels' for raw-pixel embeddings"""
    weights: str | None = None
    """checkpoint file, 'official', or none (random init: only pixel-level similarity)"""
    image_size: Annotated[int, AT_LEAST_1] = 112
    """images are resized (shorter side) and centre-cropped to this side before embedding"""
    pixel_size: Annotated[int, AT_LEAST_1] = 16
    """side of the thumbnails of --encoder pixels"""
    batch_size: Annotated[int, AT_LEAST_1] = 64
    """images per forward pass"""
    num_workers: Annotated[int, NON_NEGATIVE] = 0
    """DataLoader worker processes decoding images"""
    dedup_threshold: Annotated[float, Range(-1, 1)] = 0.95
    """pool images with cosine similarity >= this are near-duplicates (1 keeps everything but exact copies)"""
    k_per_seed: Annotated[int, NON_NEGATIVE] = 50
    """pool images retrieved per seed (0: no retrieval, keep the whole de-duplicated pool)"""
    kmeans_clusters: Annotated[int, NON_NEGATIVE] = 0
    """k-means clusters of the de-duplicated pool for balancing (0: no balancing)"""
    per_cluster: Annotated[int, NON_NEGATIVE] = 0
    """with --kmeans-clusters: keep at most this many selected images per cluster"""
    kmeans_iters: Annotated[int, AT_LEAST_1] = 20
    """Lloyd iterations"""
    kmeans_restarts: Annotated[int, AT_LEAST_1] = 3
    """k-means runs from different k-means++ initialisations; the best (highest mean cosine) is kept"""
    chunk_size: Annotated[int, AT_LEAST_1] = 4096
    """rows per similarity block (memory: chunk_size^2 floats)"""
    device: str = "auto"
    """auto, cpu or cuda"""
    precision: Precision = "auto"
    """embedding under bf16 autocast or in fp32 (auto: bf16 on CUDA and on CPUs with native bf16); the stored
    embeddings are float16 unit rows either way"""
    seed: Annotated[int, NON_NEGATIVE] = 0
    """seed of k-means and balanced sampling"""


def _embed_fn(cfg: CurateConfig, device) -> tuple[EmbedFn, int | None, str | None]:
    """``(images -> (B, D), patch size, precision)`` for ``--encoder`` (pixels: no patch size, no precision)."""
    if cfg.encoder == PIXELS:
        return (lambda images: pixel_features(images, cfg.pixel_size)), None, None
    model = load_frozen_encoder(cfg.encoder, cfg.weights, device)
    dtype = autocast_dtype(cfg.precision, device)
    logger.info("embedding with %s on %s in %s", cfg.encoder, device, describe(dtype))
    features = backbone_feature_fn(model, dtype)
    return (lambda images: features(images)["cls"]), model.patch_size, describe(dtype)


def _cache_key(cfg: CurateConfig, files: list[Path], precision: str | None) -> dict[str, Any]:
    digest = hashlib.sha1("\n".join(map(str, files)).encode()).hexdigest()
    weights = cfg.weights
    if weights not in (None, "official") and Path(weights).exists():
        weights = f"{Path(weights).resolve()}@{Path(weights).stat().st_mtime_ns}"
    return {
        "encoder": cfg.encoder,
        "weights": weights,
        "image_size": cfg.image_size,
        "pixel_size": cfg.pixel_size if cfg.encoder == PIXELS else None,
        "precision": precision,
        "n_files": len(files),
        "files_sha1": digest,
    }


def embed_folder(
    name: str, files: list[Path], cfg: CurateConfig, embed_fn, transform, device, precision: str | None
) -> Embeddings:
    """Embed ``files`` into ``<output>/<name>_embeddings.npy`` or reuse that file when nothing changed.

    ``precision`` (``"bf16"``/``"fp32"``, ``None`` for pixels) is part of the cache key: a run in the other
    precision embeds again.
    """
    out = Path(cfg.output)  # type: ignore[arg-type]
    vec_path, valid_path, meta_path = (out / f"{name}_{s}" for s in ("embeddings.npy", "valid.npy", "embeddings.json"))
    key = _cache_key(cfg, files, precision)
    if meta_path.exists() and vec_path.exists() and valid_path.exists() and json.loads(meta_path.read_text()) == key:
        logger.info("reusing %s embeddings from %s", name, vec_path)
        return Embeddings(files, load_embeddings(vec_path), np.load(valid_path))
    meta_path.unlink(missing_ok=True)  # invalidate first: an interrupted run must not look complete
    emb = embed_images(files, embed_fn, transform, vec_path, cfg.batch_size, cfg.num_workers, device, desc=name)
    np.save(valid_path, emb.valid)
    atomic_write_text(json.dumps(key, indent=2), meta_path)
    return emb


def _list_images(folder: Path | None, flag: str) -> list[Path]:
    if folder is None:
        raise ValueError(f"pass {flag} DIR (a folder of images)")
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} folder not found: {folder}; check the path")
    files = [p.resolve() for p in scan_image_files(folder)]
    if not files:
        raise ValueError(f"no images under {folder} ({flag}); expected .jpg/.jpeg/.png/.webp/.bmp files")
    return files


def run(cfg: CurateConfig) -> dict[str, Any]:
    """The whole pipeline; returns the summary (also written to ``<output>/summary.json``)."""
    if cfg.output is None:
        raise ValueError("pass --output DIR (where selected.txt and summary.json go)")
    check_fields(cfg)  # every field's type and range
    if (cfg.kmeans_clusters > 0) != (cfg.per_cluster > 0):
        raise ValueError("k-means balancing needs both --kmeans-clusters N and --per-cluster M (both > 0), or neither")
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    pool_files = _list_images(cfg.pool, "--pool")
    use_seeds = cfg.seeds is not None and cfg.k_per_seed > 0
    seed_files = _list_images(cfg.seeds, "--seeds") if use_seeds else []
    embed_fn, patch, precision = _embed_fn(cfg, device)
    transform = center_crop_transform(cfg.image_size, resize_size=cfg.image_size, patch_size=patch)
    Path(cfg.output).mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.output)

    pool = embed_folder("pool", pool_files, cfg, embed_fn, transform, device, precision)
    spread = mean_cosine(pool.vectors, pool.valid)
    if spread > 0.99:
        logger.warning(
            "pool embeddings are nearly identical (mean cosine %.4f): every image would count as a duplicate. "
            "A random-init ViT's cls token ignores the image; pass --weights (a trained encoder) or --encoder pixels",
            spread,
        )
    dedup = deduplicate(pool.vectors, cfg.dedup_threshold, pool.valid, cfg.chunk_size, device, progress=True)
    candidates = dedup.keep
    summary: dict[str, Any] = {
        "pool_images": len(pool_files),
        "unreadable": int((~pool.valid).sum()),
        "duplicates_removed": dedup.n_removed,
        "duplicate_pairs": dedup.n_pairs,
        "after_dedup": int(candidates.sum()),
        "pool_mean_cosine": round(spread, 5),
    }
    if use_seeds:
        seeds = embed_folder("seeds", seed_files, cfg, embed_fn, transform, device, precision)
        seed_vectors = np.asarray(seeds.vectors)[seeds.valid]
        ret = retrieve_nearest(pool.vectors, seed_vectors, cfg.k_per_seed, candidates, cfg.chunk_size, device, True)
        selected = ret.selected()
        priority = ret.best_similarity(len(pool_files))
        valid_seeds = [f for f, ok in zip(seed_files, seeds.valid) if ok]
        summary["seeds"] = len(seed_files)
        summary["retrieved"] = len(selected)
        summary["per_seed"] = [
            {"seed": str(f), "retrieved": int((ret.indices[i] >= 0).sum()), "mean_similarity": _mean(ret, i)}
            for i, f in enumerate(valid_seeds)
        ]
    else:
        selected, priority = np.flatnonzero(candidates), None
    if cfg.kmeans_clusters > 0:
        km = kmeans(
            pool.vectors,
            cfg.kmeans_clusters,
            cfg.kmeans_iters,
            candidates,
            cfg.seed,
            chunk_size=cfg.chunk_size,
            device=device,
        )
        before = len(selected)
        selected = balanced_sample(km.assignments, cfg.per_cluster, selected, priority, cfg.seed)
        sizes = km.sizes()
        summary["kmeans"] = {
            "clusters": cfg.kmeans_clusters,
            "iterations": km.n_iter,
            "mean_similarity_to_centroid": km.score,
            "cluster_sizes": {"min": int(sizes.min()), "max": int(sizes.max()), "median": float(np.median(sizes))},
            "per_cluster": cfg.per_cluster,
            "before_balancing": before,
            "selected_per_cluster_max": int(np.bincount(km.assignments[selected]).max()) if len(selected) else 0,
        }
    out = Path(cfg.output)
    atomic_write_text("".join(f"{pool_files[i]}\n" for i in selected), out / "selected.txt")
    removed = np.flatnonzero((dedup.representative >= 0) & ~dedup.keep)
    lines = "".join(f"{pool_files[i]}\t{pool_files[dedup.representative[i]]}\n" for i in removed)
    atomic_write_text("removed\tkept\n" + lines, out / "duplicates.tsv")
    summary.update(
        selected=len(selected),
        selected_file=str(out / "selected.txt"),
        encoder=cfg.encoder,
        weights=cfg.weights,
        precision=precision,
        seconds=round(time.perf_counter() - t0, 2),
        config=config_to_dict(cfg),
    )
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    return summary


def mean_cosine(vectors: np.ndarray, valid: np.ndarray, sample: int = 512) -> float:
    """Mean pairwise cosine of (up to) the first ``sample`` valid unit rows: near 1 means degenerate embeddings."""
    rows = np.asarray(vectors[np.flatnonzero(valid)[:sample]], dtype=np.float32)
    if len(rows) < 2:
        return 0.0
    sim = rows @ rows.T
    return float((sim.sum() - np.trace(sim)) / (len(rows) * (len(rows) - 1)))


def _mean(ret, i: int) -> float | None:
    ok = ret.indices[i] >= 0
    return round(float(ret.similarities[i][ok].mean()), 5) if ok.any() else None


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CurateConfig, argv, description=__doc__.split("\n\n")[0])
    setup_logging()
    try:
        summary = run(cfg)
    except CLI_ERRORS as e:
        return report_error(e)
    print(
        f"pool {summary['pool_images']} images: {summary['unreadable']} unreadable, "
        f"{summary['duplicates_removed']} near-duplicates removed, {summary.get('retrieved', '-')} retrieved, "
        f"{summary['selected']} selected -> {summary['selected_file']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
