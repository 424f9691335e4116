"""Study: which pretraining recipe gives a laptop-sized encoder that keeps object identity and drops colour and
background? The sweep behind the ``laptop`` preset and the released ``semnav-objects`` encoder.

Every setting pretrains ``vit_mini_patch14`` on 1,200 procedural objects (100 per class): the folder of
``envs.scenes.object_set --per-class 100`` (default backgrounds: six textures and plain grey, random colours), or
the same objects as view pairs that share the object only (``--data objects:100[:plain|:aligned]``), or the source
the setting names. It is then evaluated frozen by k-NN (k=20, T=0.07; on the cls token, and on the patch-token mean
as ``patch_mean/<set>``) on four held-out object sets (12 classes, 40 train / 20 val images per class):

- ``textured``: random backgrounds and colours; also the *background* k-NN (lower is better: the background is a
  nuisance);
- ``plain``: plain grey backgrounds (shape is the only cue);
- ``textured shift`` / ``plain shift``: train hues in [0, 0.5) turns, val hues in [0.5, 1): a colour shortcut fails.

Raw RGB pixels, gray pixels, HOG and the random-init network are evaluated on the same sets, and so is a
*supervised reference*: the network of ``--supervised-setting`` trained with the class labels, on the folder's
images, with its augmentation, batch and number of iterations, which bounds what the budget allows. Run::

    python -m experiments.studies.encoder_recipe --out runs/studies/encoder_recipe
    python -m experiments.studies.encoder_recipe --settings laptop objects_6000 --curve 600 1200 1800 3000 4500
    python -m experiments.studies.encoder_recipe --settings laptop --seeds 0 1 2    # the preset over 3 seeds

``--curve`` stops each run at those iterations, evaluates it and resumes it (the same run as without stops), for
k-NN against iterations and wall time (``curves.png``). Each pretraining run is a normal ``experiments.pretrain``
run folder under ``OUT/runs/<setting>__s<seed>/``; a finished run is reused and an interrupted one resumed, so the
command can be re-run at any time. Outputs: ``results.json`` (per setting and seed), ``table.md``, ``curves.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.train.config import PRESETS, PretrainConfig
from encoders.utils.config import replace_nested
from experiments.studies.config import parse_study_config
from experiments.studies.launch import LaunchOptions, check_options, launch
from experiments.studies.outputs import markdown_table, save_json
from techniques.rl_navigation.statistics import fmt_ci, mean_ci

logger = logging.getLogger("experiments.studies.encoder_recipe")

SCORES_FILE = "study_scores.json"


@dataclass(frozen=True)
class Setting:
    """One row of the sweep: a pretraining preset, flags over it, and the pretraining data."""

    description: str
    preset: str = "laptop"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data: str = "objects"
    """``objects`` (the folder of 1,200 object images), ``paired`` (the same objects as view pairs that share the
    object only, ``--data objects:100``), ``aligned`` (pairs that keep the geometry, ``--data objects:100:aligned``)
    ``plain`` (pairs whose second view is on plain grey, ``--data objects:100:plain``) or ``scenes`` (512 procedural
    navigation scenes, the demo's)"""
    max_iterations: int = 0
    """stop after this many iterations of the schedule (0: all of it; the exploration rows use short cuts)"""
    distill_from: str = ""
    """distil the frozen teacher of this setting (same seed) into ``experiments.distill --preset <preset>``'s
    student instead of pretraining from scratch"""


_DINO_HEADS = {"dino.head_n_prototypes": 4096, "ibot.head_n_prototypes": 4096, "dino.koleo_loss_weight": 0.1}

# The laptop preset of issue 15 (900 iterations, colour augmentation on every crop): its rows keep their meaning.
_ISSUE15 = {"optim.epochs": 9, "aug.paired_colour": 1.0}
SETTINGS: dict[str, Setting] = {
    "laptop": Setting("the laptop preset, the released semnav-objects recipe: object-sharing view pairs, the second "
                      "on plain grey, views keep their colours, 1,600 iterations (13 minutes)", data="plain"),
    "objects_6000": Setting("the laptop preset over 6,000 iterations (50 minutes)", overrides={"optim.epochs": 60},
                            data="plain"),
    "laptop_folder": Setting("the laptop preset on the folder of object images (standard multi-crop, colour "
                             "augmentation)"),
    "laptop_issue15": Setting("the issue-15 laptop preset: SimDINO, fast teacher, colour augmentation, blur "
                              "relative to the crop, 900 iterations on the folder", overrides=_ISSUE15),
    "paired": Setting("laptop_issue15 on view pairs (two renders per object: other background and colour)",
                      overrides=_ISSUE15, data="aligned"),
    "scenes": Setting("laptop_issue15 on 512 procedural navigation scenes (the RL demo's images)", overrides=_ISSUE15,
                      data="scenes"),
    "dinov2_loss": Setting("laptop_issue15 with the DINOv2 loss (prototypes, centering, KoLeo) instead of SimDINO",
                           overrides={**_ISSUE15, "objective": "dinov2", **_DINO_HEADS}),
    "laptop_pico": Setting("vit_pico from scratch with the laptop_issue15 recipe (the distilled student's peer)",
                           overrides={**_ISSUE15, "student.arch": "vit_pico_patch14"}),
    "laptop_distilled_pico": Setting("the laptop_issue15 teacher (same seed) distilled into vit_pico (distill "
                                     "--preset laptop, 900 iterations)", overrides={"optim.epochs": 9},
                                     distill_from="laptop_issue15"),
    "tiny_dinov2": Setting("the previous CPU recipe: --preset tiny (DINOv2, 300 iterations) with base lr 0.03",
                           preset="tiny", overrides={"optim.base_lr": 0.03}),
}  # fmt: skip

# The exploration that chose the preset's settings, from its first draft (6 local crops, teacher momentum 0.99,
# 600 iterations) on. Rows compare only with rows of the same number of iterations (the 200- and 300-iteration rows
# stop early in the 600-iteration schedule).
_DRAFT = {"crops.local_crops_number": 6, "teacher.momentum_teacher": 0.99, "optim.epochs": 6, "aug.paired_colour": 1.0}
_NO_PHOTOMETRIC = {
    "aug.color_jitter_probability": 0.0, "aug.grayscale_probability": 0.0,
    "aug.channel_permutation_probability": 0.0, "aug.solarize_probability": 0.0,
}  # fmt: skip
EXPLORATION: dict[str, Setting] = {
    "draft": Setting("first draft (6 local crops, momentum 0.99, 600 iterations)", overrides=_DRAFT),
    "draft_rate_weight_0.3": Setting("draft, coding-rate weight 0.3",
                                     overrides={**_DRAFT, "simdino.coding_rate_weight": 0.3}),
    "draft_eps_0.5": Setting("draft, coding-rate eps 0.5", overrides={**_DRAFT, "simdino.coding_rate_eps": 0.5}),
    "draft_paired": Setting("draft on view pairs", overrides=_DRAFT, data="aligned"),
    "draft_200_momentum_0.9": Setting("draft, momentum 0.9, first 200 iterations",
                                      overrides={**_DRAFT, "teacher.momentum_teacher": 0.9}, max_iterations=200),
    "draft_200_base_lr_0.004": Setting("draft, base lr 0.004, first 200 iterations",
                                       overrides={**_DRAFT, "optim.base_lr": 0.004}, max_iterations=200),
    "draft_200_no_photometric": Setting("draft without photometric augmentation, first 200 iterations",
                                        overrides={**_DRAFT, **_NO_PHOTOMETRIC}, max_iterations=200),
    "m0.9_300": Setting("draft, momentum 0.9, first 300 iterations",
                        overrides={**_DRAFT, "teacher.momentum_teacher": 0.9}, max_iterations=300),
    "m0.9_300_base_lr_0.02": Setting("... and base lr 0.02",
                                     overrides={**_DRAFT, "teacher.momentum_teacher": 0.9, "optim.base_lr": 0.02},
                                     max_iterations=300),
    "m0.9_300_2_local": Setting("... and 2 local crops",
                                overrides={**_DRAFT, "teacher.momentum_teacher": 0.9, "crops.local_crops_number": 2},
                                max_iterations=300),
    "m0.9_300_pairs_half": Setting("... on view pairs, the other view in half the samples",
                                   overrides={**_DRAFT, "teacher.momentum_teacher": 0.9,
                                              "aug.paired_view_probability": 0.5},
                                   data="aligned", max_iterations=300),
}  # fmt: skip

# Issue 24: views that share the object only. Every row is cut at 600 iterations of a 2,700-iteration schedule (27
# epochs of 100), the length of the released recipe's search.
_LONG = {"optim.epochs": 27, "aug.paired_colour": 1.0}
OBJECT_VIEWS: dict[str, Setting] = {
    "long_600": Setting("laptop, 2,700-iteration schedule, first 600 iterations", overrides=_LONG, max_iterations=600),
    "objects_600": Setting("... on object-sharing view pairs (background, colour, size, pose and position redrawn)",
                           overrides=_LONG, data="paired", max_iterations=600),
    "aligned_600": Setting("... on aligned view pairs (background and colour redrawn)", overrides=_LONG,
                           data="aligned", max_iterations=600),
    "objects_global_0.6_600": Setting("... object-sharing pairs, global crops of 0.6-1 of the image",
                                      overrides={**_LONG, "crops.global_crops_scale": (0.6, 1.0)},
                                      data="paired", max_iterations=600),
    "objects_ramp_600": Setting("... object-sharing pairs, photometric augmentation ramped in over 600 iterations",
                                overrides={**_LONG, "aug.ramp_iterations": 600}, data="paired", max_iterations=600),
    "objects_half_600": Setting("... object-sharing pairs in half the samples (both crops of one image in the rest)",
                                overrides={**_LONG, "aug.paired_view_probability": 0.5}, data="paired",
                                max_iterations=600),
    "plain_600": Setting("... object-sharing pairs whose second view is on plain grey", overrides=_LONG,
                         data="plain", max_iterations=600),
    "objects_nophoto_600": Setting("... object-sharing pairs without photometric augmentation (the views already "
                                   "differ in colour)", overrides={**_LONG, **_NO_PHOTOMETRIC}, data="paired",
                                   max_iterations=600),
    "plain_nophoto_600": Setting("... second view on plain grey, without photometric augmentation",
                                 overrides={**_LONG, **_NO_PHOTOMETRIC}, data="plain", max_iterations=600),
    "aligned_nophoto_600": Setting("... aligned pairs without photometric augmentation",
                                   overrides={**_LONG, **_NO_PHOTOMETRIC}, data="aligned", max_iterations=600),
    "plain_nophoto_global_0.6_600": Setting("... second view on plain grey, no photometric augmentation, global "
                                            "crops of 0.6-1 of the image",
                                            overrides={**_LONG, **_NO_PHOTOMETRIC,
                                                       "crops.global_crops_scale": (0.6, 1.0)},
                                            data="plain", max_iterations=600),
    "plain_nophoto_400pc_600": Setting("... second view on plain grey, no photometric augmentation, 400 objects "
                                       "per class", overrides={**_LONG, **_NO_PHOTOMETRIC}, data="plain:400",
                                       max_iterations=600),
}  # fmt: skip
# Architecture at 112 px on the plain-second-view recipe: patch 8 (196 tokens) against 14 (64), register tokens, width
# against depth; each row's wall time is in the table (compare at equal wall time with the curves).
_PLAIN_NOPHOTO = {**_LONG, **_NO_PHOTOMETRIC}


def _plain_600(description: str, overrides: Mapping[str, Any]) -> Setting:
    """An exploration row on plain-second-view pairs, cut at 600 iterations of the 2,700-iteration schedule."""
    return Setting(description, overrides=overrides, data="plain", max_iterations=600)


for _arch, _what in (
    ("vit_mini_patch8", "patch 8 (196 tokens at 112 px)"),
    ("vit_mini_reg_patch14", "4 register tokens"),
    ("vit_mini_wide_patch14", "3 blocks of width 192"),
    ("vit_mini_deep_patch14", "12 blocks of width 96"),
):
    OBJECT_VIEWS[f"arch_{_arch.removeprefix('vit_')}_600"] = _plain_600(
        f"plain_nophoto_600 with {_arch}: {_what}", {**_PLAIN_NOPHOTO, "student.arch": _arch}
    )
# Weaker colour changes on the pairs: between none (plain_nophoto_600) and the full laptop strength (plain_600).
for _strength in (0.25, 0.5):
    OBJECT_VIEWS[f"plain_colour_{_strength:g}_600"] = _plain_600(
        f"... second view on plain grey, colour changes on the pairs at {_strength:g} of the laptop strength",
        {**_LONG, "aug.paired_colour": _strength},
    )
# The masked-patch term (SimDINOv2's patch alignment, iBOT's place) at other weights than 1, on the same recipe.
for _weight in (0.0, 2.0):
    OBJECT_VIEWS[f"patch_weight_{_weight:g}_600"] = _plain_600(
        f"plain_nophoto_600 with the masked-patch term at weight {_weight:g} (1 elsewhere)",
        {**_PLAIN_NOPHOTO, "ibot.loss_weight": _weight},
    )
EXPLORATION.update(OBJECT_VIEWS)
SETTINGS.update(EXPLORATION)
MAIN_SETTINGS: tuple[str, ...] = ("laptop", "objects_6000", "laptop_folder")

EVAL_SETS: dict[str, dict[str, str]] = {
    "textured": {"synthetic_backgrounds": "random", "synthetic_colour_mode": "random"},
    "plain": {"synthetic_backgrounds": "plain", "synthetic_colour_mode": "random"},
    "textured_shift": {"synthetic_backgrounds": "random", "synthetic_colour_mode": "shift"},
    "plain_shift": {"synthetic_backgrounds": "plain", "synthetic_colour_mode": "shift"},
}

#: the smoke budget pretrains the pico network on the pico schedule (every setting's other choices kept)
SMOKE_PRETRAINING: dict[str, Any] = {
    **PRESETS["pico"],
    "optim.warmup_iters": None,
    "optim.freeze_last_layer_iters": None,
    "teacher.warmup_teacher_temp_iters": None,
    "teacher.momentum_iters": None,
    "aug.ramp_iterations": 0,
}

BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    # seconds: a pico pretraining of a few iterations, for the smoke test
    "smoke": {"max_iterations": 2, "per_class": 2, "eval_train_per_class": 4, "eval_val_per_class": 2},
}


@dataclass
class EncoderRecipeConfig(LaunchOptions):
    """Pretrain an encoder per setting and seed, evaluate it frozen on four object sets next to hand-made baselines."""

    out: Path = Path("runs/studies/encoder_recipe")
    """study folder (data, runs, results.json, table.md)"""
    budget: str = "cpu"
    """cpu: the presets' full schedules; smoke: seconds (tests)"""
    settings: tuple[str, ...] = MAIN_SETTINGS
    """rows of the sweep (SETTINGS in this module; the exploration rows are named in EXPLORATION)"""
    supervised: bool = True
    """also train the supervised reference (labels) for the first seed"""
    seeds: tuple[int, ...] = (0,)
    """pretraining seeds of every setting"""
    per_class: int = 100
    """object images per class in the pretraining set (12 classes)"""
    scenes: int = 512
    """procedural scenes rendered for the 'scenes' setting"""
    max_iterations: int = 0
    """stop every pretraining after this many iterations (0: the preset's schedule)"""
    eval_train_per_class: int = 40
    """evaluation sets: k-NN training images per class"""
    eval_val_per_class: int = 20
    """evaluation sets: validation images per class"""
    device: str = "auto"
    """auto, cpu or cuda"""
    curve: tuple[int, ...] = ()
    """also evaluate every run at these iterations (the run stops there, is evaluated and resumes: the same run),
    for k-NN against iterations and wall time"""
    supervised_setting: str = "laptop"
    """the setting whose network, augmentation and schedule the supervised reference trains with labels"""


# -------------------------------------------------------------------------------------------------- data
def pretraining_data(cfg: EncoderRecipeConfig, kind: str) -> str:
    """The ``--data`` value of a setting's data kind (writing the folder on first use); the procedural kinds take
    a count of objects per class after a colon (``paired:400``; default ``--per-class``)."""
    base, _, count = kind.partition(":")
    if base in ("paired", "aligned", "plain"):
        per_class = int(count) if count else cfg.per_class
        return f"objects:{per_class}" + ("" if base == "paired" else f":{base}")
    if kind == "objects":
        from envs.scenes.object_set import write_object_set

        folder = cfg.out / "data" / f"objects_{cfg.per_class}"
        if not (folder / "labels.jsonl").exists():
            write_object_set(folder, cfg.per_class, "train", progress=False)
        return str(folder)
    if kind == "scenes":
        import cv2

        from envs.scenes import SceneGenerator
        from techniques.rl_navigation.config import scene_generator_kwargs

        folder = cfg.out / "data" / f"scenes_{cfg.scenes}"
        folder.mkdir(parents=True, exist_ok=True)
        generator = SceneGenerator(**scene_generator_kwargs(224, 14, 0))
        for scene_id in range(cfg.scenes):
            path = folder / f"scene_{scene_id:05d}.png"
            if not path.exists():
                image = generator.generate(scene_id, "train").image
                cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return str(folder)
    raise ValueError(f"unknown pretraining data {kind!r}; choose objects, paired, aligned, plain or scenes")


def pretrain_config(cfg: EncoderRecipeConfig, setting: Setting, seed: int, run_dir: Path) -> PretrainConfig:
    """The ``experiments.pretrain`` config of one (setting, seed) (``experiments.distill``'s for a distillation)."""
    from encoders.distill.config import PRESETS as DISTILL_PRESETS
    from encoders.distill.config import DistillConfig

    presets = DISTILL_PRESETS if setting.distill_from else PRESETS
    values: dict[str, Any] = {
        **presets[setting.preset],
        **setting.overrides,
        **(SMOKE_PRETRAINING if cfg.budget == "smoke" else {}),
        "data": pretraining_data(cfg, setting.data),
        "output": str(run_dir),
        "train.seed": seed,
        "train.device": cfg.device,
        "train.progress": False,
    }
    iterations = cfg.max_iterations or setting.max_iterations
    if iterations > 0:
        values["train.max_iterations"] = iterations
    if setting.distill_from:
        if cfg.budget == "smoke":
            values["student.arch"] = "vit_pico_patch14"
        teacher_dir = cfg.out / "runs" / f"{setting.distill_from}__s{seed}"
        values["teacher_weights"] = str(teacher_dir / "checkpoint.pth")
        return replace_nested(DistillConfig(), values)
    return replace_nested(PretrainConfig(), values)


def supervised_run_name(cfg: EncoderRecipeConfig, seed: int) -> str:
    """The supervised reference's run folder name, ``supervised_<setting>__s<seed>``."""
    return f"supervised_{cfg.supervised_setting}__s{seed}"


# ---------------------------------------------------------------------------------------------- pretraining
def pretrain(cfg: EncoderRecipeConfig, name: str, seed: int, stop: int = 0) -> tuple[Path, dict[str, float]]:
    """Run (or reuse, or resume) one pretraining; ``(backbone path, {"wall_seconds", last logged monitors})``.

    ``stop > 0`` stops the run at that iteration (a point of the curve; the next call resumes it) and returns
    ``{"wall_seconds"}`` of that part."""
    from encoders.train import distributed as dist_utils
    from encoders.train.trainer import BACKBONE_NAME, CHECKPOINT_NAME
    from experiments import distill as distill_cli
    from experiments import pretrain as pretrain_cli

    setting = SETTINGS[name]
    if setting.distill_from:  # the teacher first (reused when finished)
        pretrain(cfg, setting.distill_from, seed)
    run_dir = cfg.out / "runs" / f"{name}__s{seed}"
    summary_path = run_dir / "study_summary.json"
    backbone = run_dir / (distill_cli.STUDENT_BACKBONE_NAME if setting.distill_from else BACKBONE_NAME)
    if backbone.exists() and summary_path.exists():
        return backbone, json.loads(summary_path.read_text())
    pcfg = pretrain_config(cfg, setting, seed, run_dir)
    if stop > 0:
        pcfg = replace_nested(pcfg, {"train.max_iterations": stop})
    if (run_dir / CHECKPOINT_NAME).exists():
        pcfg = replace_nested(pcfg, {"resume": True})
    logger.info("%s %s (seed %d) into %s", "distilling" if setting.distill_from else "pretraining", name, seed, run_dir)
    ctx = dist_utils.DistributedContext(device=dist_utils.resolve_device(cfg.device))
    t0 = time.perf_counter()
    rc = (distill_cli if setting.distill_from else pretrain_cli).run(pcfg, ctx)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"pretraining {name} (seed {seed}) stopped with exit code {rc}; rerun to resume it")
    if stop > 0:
        return backbone, {"wall_seconds": round(wall, 1)}
    summary = {"wall_seconds": round(wall, 1), "arch": pcfg.student.arch, **final_monitors(run_dir)}
    if pcfg.resume:
        summary["resumed"] = 1.0  # the wall time covers the resumed part only
    save_json(summary, summary_path)
    return backbone, summary


def final_monitors(run_dir: Path) -> dict[str, float]:
    """The last logged value of the collapse monitors of a run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        if tag.startswith("monitor/"):
            out[tag.split("/", 1)[1]] = float(acc.Scalars(tag)[-1].value)
    return out


# ------------------------------------------------------------------------------------- supervised reference
def supervised_reference(
    cfg: EncoderRecipeConfig, seed: int, roots: Mapping[str, Path] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Train ``cfg.supervised_setting``'s network with labels (cross-entropy on a linear head over the cls token) on
    the object-set folder, with the setting's augmentation (global crop 1 of its multi-crop), batch, iterations, peak
    lr and warmup; returns ``(backbone path, {"wall_seconds", "curve"})``, ``curve`` holding the k-NN scores on
    ``roots`` at ``cfg.curve``'s iterations (evaluation time not counted). Reused when finished."""
    import numpy as np
    import torch.nn.functional as F

    import encoders
    from encoders.data.augmentations import DataAugmentationDINO
    from encoders.data.image_folder import LabelledImageFolder
    from encoders.train.config import resolve_run
    from encoders.train.distributed import resolve_device
    from encoders.train.schedules import cosine_schedule
    from encoders.utils.precision import autocast, autocast_dtype

    run_dir = cfg.out / "runs" / supervised_run_name(cfg, seed)
    backbone, summary_path = run_dir / "backbone.pth", run_dir / "study_summary.json"
    if backbone.exists() and summary_path.exists():
        return backbone, json.loads(summary_path.read_text())
    setting = dataclasses.replace(SETTINGS[cfg.supervised_setting], data="objects")
    pcfg = pretrain_config(cfg, setting, seed, run_dir)
    resolved = resolve_run(pcfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    model = encoders.create_model(
        pcfg.student.arch, init_values=pcfg.student.layerscale, drop_path_rate=pcfg.student.drop_path_rate
    ).to(device)
    data = LabelledImageFolder(pcfg.data)
    head = torch.nn.Linear(model.embed_dim, len(data.classes)).to(device)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, weight_decay=pcfg.optim.weight_decay)
    aug = DataAugmentationDINO(
        pcfg.crops.global_crops_scale, local_crops_number=0, global_crops_size=pcfg.crops.global_crops_size,
        photometric=pcfg.aug,
    )  # fmt: skip
    dtype = autocast_dtype(pcfg.train.precision, device)
    rng = np.random.default_rng(seed)
    batch = pcfg.train.batch_size_per_gpu
    warmup = resolved.schedules.lr_warmup if resolved.schedules else 0
    t0 = time.perf_counter()
    points = sorted(p for p in set(cfg.curve) if 0 < p < resolved.stop_iteration) if roots else []
    curve: list[dict[str, Any]] = []
    evaluating = 0.0
    model.train()
    for it in range(resolved.stop_iteration):
        if points and it == points[0]:
            t_eval = time.perf_counter()
            scores = evaluate_backbone(model, roots or {}, device)
            model.train()
            evaluating += time.perf_counter() - t_eval
            curve.append({"iteration": points.pop(0), "wall_seconds": round(t_eval - t0 - evaluating, 1),
                          "scores": scores})  # fmt: skip
        picks = rng.integers(0, len(data), batch)
        samples = [data[int(i)] for i in picks]
        x = torch.stack([aug(image, rng=rng)["global_crops"][0] for image, _ in samples]).to(device)
        y = torch.tensor([label for _, label in samples], device=device)
        lr = cosine_schedule(it, resolved.lr, pcfg.optim.min_lr, resolved.total_iterations, warmup_iters=warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(device, dtype):
            logits = head(model.forward_features(x)["x_norm_clstoken"])
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    wall = time.perf_counter() - t0 - evaluating
    run_dir.mkdir(parents=True, exist_ok=True)
    encoders.save_backbone(model.eval(), backbone, name=pcfg.student.arch, overrides={})
    summary = {"wall_seconds": round(wall, 1), "final_train_loss": float(loss.detach()), "curve": curve,
               "iterations": resolved.stop_iteration}  # fmt: skip
    save_json(summary, summary_path)
    return backbone, summary


# ----------------------------------------------------------------------------------------------- evaluation
def eval_roots(cfg: EncoderRecipeConfig) -> dict[str, Path]:
    """The four cached evaluation sets (written on first use by ``experiments.eval_encoder``)."""
    from experiments.eval_encoder import EvalConfig, synthetic_object_set

    roots = {}
    for name, options in EVAL_SETS.items():
        ecfg = EvalConfig(
            synthetic=True,
            synthetic_dir=cfg.out / "data" / "eval",
            synthetic_train_per_class=cfg.eval_train_per_class,
            synthetic_val_per_class=cfg.eval_val_per_class,
            **options,
        )
        roots[name] = synthetic_object_set(ecfg)
    return roots


def evaluate(
    feature_fn: Any, feature: str | Sequence[str], roots: Mapping[str, Path], patch: int, device: Any
) -> dict[str, float]:
    """k-NN top-1 of ``feature_fn``'s ``feature`` on every set (and the background k-NN on the textured ones).

    Several features (e.g. ``("cls", "patch_mean")``): the first under the set's name, the others under
    ``"<feature>/<set>"``."""
    from encoders.eval.features import extract_features
    from encoders.eval.knn import knn_evaluate
    from experiments.eval_encoder import background_labels, load_splits

    scores: dict[str, float] = {}
    for name, root in roots.items():
        train, val = load_splits(root, 112, patch)
        f_train = extract_features(feature_fn, train, 64, 0, device, progress=False)
        f_val = extract_features(feature_fn, val, 64, 0, device, progress=False)
        backgrounds = background_labels(train, val)
        for i, key in enumerate([feature] if isinstance(feature, str) else feature):
            prefix = "" if i == 0 else f"{key}/"
            x_train, x_val = f_train.features[key], f_val.features[key]
            n_classes = len(train.classes)
            scores[prefix + name] = knn_evaluate(x_train, f_train.labels, x_val, f_val.labels, 20, 0.07, n_classes).top1
            if backgrounds is not None:
                bg_train, bg_val, names = backgrounds
                scores[f"{prefix}{name}_background"] = knn_evaluate(
                    x_train, bg_train, x_val, bg_val, 20, 0.07, len(names)
                ).top1
    return scores


def evaluate_backbone(model: torch.nn.Module, roots: Mapping[str, Path], device: Any) -> dict[str, float]:
    """:func:`evaluate` of a backbone's cls token (the sets' names) and patch mean (``patch_mean/<set>``)."""
    from encoders.eval.features import backbone_feature_fn

    return evaluate(backbone_feature_fn(model), ("cls", "patch_mean"), roots, model.patch_size, device)


def baselines(roots: Mapping[str, Path], device: Any) -> dict[str, dict[str, float]]:
    """Raw RGB pixels, gray pixels, HOG and the random-init ``vit_mini_patch14`` on the evaluation sets."""
    from encoders.eval.features import (
        backbone_feature_fn,
        gray_pixel_feature_fn,
        hog_feature_fn,
        load_frozen_encoder,
        pixel_feature_fn,
    )

    torch.manual_seed(0)
    random_init = load_frozen_encoder("vit_mini_patch14", None, device)
    rows = {
        "raw pixels 16x16": (pixel_feature_fn(16), "pixels"),
        "gray pixels 16x16": (gray_pixel_feature_fn(16), "gray_pixels"),
        "HOG (14 px cells, 9 bins)": (hog_feature_fn(14), "hog"),
        "random-init vit_mini": (backbone_feature_fn(random_init), "cls"),
    }
    return {label: evaluate(fn, feature, roots, 14, device) for label, (fn, feature) in rows.items()}


# ------------------------------------------------------------------------------------------------- report
COLUMNS = (
    ("textured", "textured k-NN"),
    ("textured_background", "textured: background k-NN (lower is better)"),
    ("plain", "plain k-NN"),
    ("textured_shift", "textured, colour shift"),
    ("plain_shift", "plain, colour shift"),
    ("patch_mean/textured", "patch mean: textured"),
    ("patch_mean/plain", "patch mean: plain"),
)
MONITORS = ("head_spread", "teacher_crossview_same", "teacher_crossview_other")


def _percent(values: Sequence[float | None]) -> str:
    """Mean ± 95% t-interval in % of the values present ("-" without any: an older run without that score)."""
    present = [100 * v for v in values if v is not None]
    return fmt_ci(mean_ci(present), digits=1) if present else "-"


def table(results: Mapping[str, Any]) -> str:
    """Markdown: one row per baseline and setting, k-NN top-1 in % (mean ± 95% t-interval over seeds), the collapse
    and cross-view monitors at the end, and the pretraining minutes."""
    header = ["encoder", *(label for _, label in COLUMNS), *MONITORS, "pretraining min"]
    rows = []
    for label, scores in results["baselines"].items():
        rows.append([label, *(_percent([scores.get(k)]) for k, _ in COLUMNS), *([""] * len(MONITORS)), ""])
    for setting, per_seed in sorted(results.get("supervised", {}).items()):
        entries = list(per_seed.values())
        label = (
            f"supervised reference (labels; `{setting}`'s network, augmentation and iterations; {len(entries)} seed)"
        )
        cells = [label, *(_percent([e["scores"].get(k) for e in entries]) for k, _ in COLUMNS)]
        minutes = fmt_ci(mean_ci([e["pretraining"]["wall_seconds"] / 60 for e in entries]), digits=1)
        rows.append([*cells, *([""] * len(MONITORS)), minutes])
    for name, per_seed in results["settings"].items():
        seeds = list(per_seed.values())
        cells = [f"`{name}` ({len(seeds)} seed{'s' * (len(seeds) > 1)}): {SETTINGS[name].description}"]
        cells += [_percent([s["scores"].get(key) for s in seeds]) for key, _ in COLUMNS]
        for key in MONITORS:
            values = [s["pretraining"].get(key) for s in seeds if s["pretraining"].get(key) is not None]
            cells.append(fmt_ci(mean_ci(values), digits=2) if values else "-")
        cells.append(fmt_ci(mean_ci([s["pretraining"]["wall_seconds"] / 60 for s in seeds]), digits=1))
        rows.append(cells)
    return markdown_table(header, rows)


def _curves(results: Mapping[str, Any]) -> dict[str, list[list[dict[str, Any]]]]:
    """``{row label: [curve of each seed]}`` of every setting and supervised reference that has a curve."""
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for setting, per_seed in results.get("supervised", {}).items():
        out[f"labels ({setting})"] = [e["curve"] for e in per_seed.values() if e.get("curve")]
    for name, per_seed in results["settings"].items():
        out[name] = [e["curve"] for e in per_seed.values() if e.get("curve")]
    return {k: v for k, v in out.items() if v}


def curve_table(results: Mapping[str, Any]) -> str:
    """Markdown: k-NN (textured, plain, patch-mean textured, background) against iterations and wall minutes, mean ±
    95% t-interval over the seeds that reached each point."""
    keys = ("textured", "plain", "patch_mean/textured", "textured_background")
    rows = []
    for label, curves in _curves(results).items():
        for iteration in sorted({p["iteration"] for c in curves for p in c}):
            points = [p for c in curves for p in c if p["iteration"] == iteration]
            minutes = fmt_ci(mean_ci([p["wall_seconds"] / 60 for p in points]), digits=1)
            scores = [_percent([p["scores"].get(k) for p in points]) for k in keys]
            rows.append([label, str(iteration), minutes, str(len(points)), *scores])
    header = ["run", "iteration", "wall min", "seeds", "textured", "plain", "patch mean: textured", "background"]
    return markdown_table(header, rows)


def curve_figure(results: Mapping[str, Any], path: Path) -> Path | None:
    """Textured k-NN against iterations and against wall minutes (seed means; HOG and gray pixels as lines)."""
    from experiments.studies.figures import new_figure, save_figure

    curves = _curves(results)
    if not curves:
        return None
    fig, axes = new_figure(ncols=2, width=4.6)
    for label, runs in curves.items():
        iterations = sorted({p["iteration"] for c in runs for p in c})
        means = [[p for c in runs for p in c if p["iteration"] == it] for it in iterations]
        minutes = [float(np.mean([p["wall_seconds"] for p in ps])) / 60 for ps in means]
        scores = [100 * float(np.mean([p["scores"]["textured"] for p in ps])) for ps in means]
        axes[0].plot(iterations, scores, marker="o", label=label)
        axes[1].plot(minutes, scores, marker="o", label=label)
    for baseline, style in (("HOG (14 px cells, 9 bins)", "--"), ("gray pixels 16x16", ":")):
        if baseline in results["baselines"]:
            for ax in axes:
                ax.axhline(100 * results["baselines"][baseline]["textured"], color="grey", ls=style, label=baseline)
    axes[0].set(xlabel="iteration", ylabel="textured k-NN top-1 (%)")
    axes[1].set(xlabel="wall minutes (2-core CPU)")
    axes[1].legend(fontsize=6)
    return save_figure(fig, path)


@dataclass
class RecipeRun:
    """One (setting, seed) of the sweep as a sub-run: its pretraining run folder (``setting`` ``"supervised"``: the
    supervised reference) and the frozen k-NN scores of its backbone on the evaluation sets ``roots``, written to
    ``<run_dir>/study_scores.json``. A finished pretraining is reused, an interrupted one resumed."""

    study: EncoderRecipeConfig
    setting: str
    seed: int
    roots: dict[str, Path]

    @property
    def run_dir(self) -> Path:
        if self.setting == "supervised":
            return self.study.out / "runs" / supervised_run_name(self.study, self.seed)
        return self.study.out / "runs" / f"{self.setting}__s{self.seed}"

    def check(self) -> None:
        name = self.study.supervised_setting if self.setting == "supervised" else self.setting
        if name not in SETTINGS:
            flag = "--supervised-setting" if self.setting == "supervised" else "--settings"
            raise ValueError(f"{flag}: unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        if self.setting == "supervised" and SETTINGS[name].distill_from:
            raise ValueError(f"--supervised-setting {name!r} distils a teacher; choose a pretraining setting")

    def _scores(self) -> dict[str, Any] | None:
        path = self.run_dir / SCORES_FILE
        data = json.loads(path.read_text()) if path.exists() else None
        same_sets = data is not None and data["roots"] == {k: str(v) for k, v in self.roots.items()}
        return data if same_sets and (self.run_dir / "study_summary.json").exists() else None

    def done(self) -> bool:
        return self._scores() is not None

    def result(self) -> dict[str, Any]:
        """``{"scores", "pretraining", "curve"}`` of the finished sub-run (``curve``: the points of ``--curve`` and
        the end, each ``{"iteration", "wall_seconds", "scores"}``, wall time summed over the parts)."""
        data = self._scores()
        if data is None:
            raise FileNotFoundError(f"{self.run_dir} holds no finished sub-run; rerun the study")
        pretraining = json.loads((self.run_dir / "study_summary.json").read_text())
        if data.get("curve"):
            pretraining["wall_seconds"] = data["curve"][-1]["wall_seconds"]  # all parts of the run
        return {"scores": data["scores"], "pretraining": pretraining, "curve": data.get("curve", [])}

    def _config(self) -> Any:
        """The run's pretraining (or distillation) config; the supervised reference's is its setting's."""
        name = self.study.supervised_setting if self.setting == "supervised" else self.setting
        return pretrain_config(self.study, SETTINGS[name], self.seed, self.run_dir)

    def _stop_iteration(self) -> int:
        from encoders.train.config import resolve_run

        return resolve_run(self._config()).stop_iteration

    def __call__(self) -> None:
        from encoders.eval.features import load_frozen_encoder
        from encoders.train.distributed import resolve_device

        if self.done():
            return
        device = resolve_device(self.study.device)
        arch, stop = self._config().student.arch, self._stop_iteration()
        curve_path = self.run_dir / "study_curve.json"
        curve: list[dict[str, Any]] = json.loads(curve_path.read_text()) if curve_path.exists() else []
        if self.setting == "supervised":
            backbone, summary = supervised_reference(self.study, self.seed, self.roots)
            curve = summary.get("curve", [])
        else:  # stop at every curve point, evaluate, resume: the same run as without stops
            for point in sorted(p for p in set(self.study.curve) if 0 < p < stop):
                if any(p["iteration"] == point for p in curve):
                    continue
                backbone, part = pretrain(self.study, self.setting, self.seed, stop=point)
                model = load_frozen_encoder(arch, str(backbone), device)
                wall = part["wall_seconds"] + (curve[-1]["wall_seconds"] if curve else 0.0)
                curve.append({"iteration": point, "wall_seconds": round(wall, 1),
                              "scores": evaluate_backbone(model, self.roots, device)})  # fmt: skip
                save_json(curve, curve_path)
            backbone, summary = pretrain(self.study, self.setting, self.seed)
        model = load_frozen_encoder(arch, str(backbone), device)
        scores = evaluate_backbone(model, self.roots, device)
        logger.info("%s seed %d: %s", self.setting, self.seed, {k: round(v, 3) for k, v in scores.items()})
        if curve:  # the end as the last point; an SSL run's parts add up
            wall = summary["wall_seconds"] + (curve[-1]["wall_seconds"] if self.setting != "supervised" else 0.0)
            curve = [*curve, {"iteration": stop, "wall_seconds": round(wall, 1), "scores": scores}]
        data = {"roots": {k: str(v) for k, v in self.roots.items()}, "scores": scores, "curve": curve}
        save_json(data, self.run_dir / SCORES_FILE)


def _distils(subrun: RecipeRun) -> bool:
    return bool(subrun.setting in SETTINGS and SETTINGS[subrun.setting].distill_from)


def run(cfg: EncoderRecipeConfig) -> dict[str, Any]:
    """Pretrain and evaluate every (setting, seed) as sub-runs (:class:`RecipeRun`, launched by ``--launcher`` /
    ``--workers``); write ``results.json`` and ``table.md``; return the results."""
    from encoders.train.distributed import resolve_device

    if not cfg.seeds:
        raise ValueError("--seeds needs at least one seed")
    subruns = [RecipeRun(cfg, "supervised", cfg.seeds[0], {})] if cfg.supervised else []
    subruns += [RecipeRun(cfg, name, seed, {}) for name in cfg.settings for seed in cfg.seeds]
    for subrun in subruns:
        subrun.check()
    check_options(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    roots = eval_roots(cfg)
    for kind in {SETTINGS[s.setting].data if s.setting in SETTINGS else "objects" for s in subruns}:
        pretraining_data(cfg, kind)  # written once here, not by sub-runs at the same time
    subruns = [dataclasses.replace(s, roots=roots) for s in subruns]
    path = cfg.out / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if "baselines" not in results:
        results["baselines"] = baselines(roots, resolve_device(cfg.device))
        save_json(results, path)
    # distillations after their teachers (two waves: a teacher is one folder, never written by two sub-runs at once)
    planned = {(s.setting, s.seed) for s in subruns}
    teachers = sorted({(SETTINGS[s.setting].distill_from, s.seed) for s in subruns if _distils(s)} - planned)
    first = [s for s in subruns if not _distils(s)] + [RecipeRun(cfg, t, seed, roots) for t, seed in teachers]
    launch(first, cfg, cfg.out)
    launch([s for s in subruns if _distils(s)], cfg, cfg.out)
    results.setdefault("settings", {})
    supervised = results.get("supervised", {})
    if any("scores" in entry for entry in supervised.values()):  # results.json before --supervised-setting
        results["supervised"] = {"laptop_issue15": supervised}
    for s in subruns:
        if s.setting == "supervised":
            results.setdefault("supervised", {}).setdefault(cfg.supervised_setting, {})[str(s.seed)] = s.result()
        else:
            results["settings"].setdefault(s.setting, {})[str(s.seed)] = s.result()
    save_json(results, path)
    text = table(results)
    if _curves(results):
        text += "\n\n" + curve_table(results)
        curve_figure(results, cfg.out / "curves.png")
    (cfg.out / "table.md").write_text(text + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.logging import setup_logging

    cfg = parse_study_config(EncoderRecipeConfig, argv, BUDGETS, __doc__.split("\n\n")[0])
    setup_logging()
    try:
        results = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(results))
    print(f"wrote {cfg.out / 'results.json'} and {cfg.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
