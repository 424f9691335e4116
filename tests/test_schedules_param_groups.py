"""Schedules (pure functions) and AdamW parameter groups against the official DINOv2 fixtures."""

from __future__ import annotations

import json
import math

import pytest
import torch

from encoders import create_model
from encoders.heads import DINOHead
from encoders.train.config import OptimConfig, PretrainConfig, TeacherConfig, resolve_run, scaled_lr
from encoders.train.param_groups import (
    fuse_params_groups,
    get_params_groups_with_decay,
    get_vit_layer_id,
    get_vit_lr_decay_rate,
)
from encoders.train.schedules import apply_optim_scheduler, cosine_schedule, schedule_values


@pytest.fixture(scope="module")
def sched_ref(dinov2_fixtures):
    return torch.load(dinov2_fixtures / "schedules_default_cfg.pt", weights_only=True)


@pytest.fixture(scope="module")
def groups_ref(dinov2_fixtures):
    return json.loads((dinov2_fixtures / "param_groups.json").read_text())


def test_default_schedules_match_official(sched_ref):
    epoch_length = sched_ref["OFFICIAL_EPOCH_LENGTH_used"]
    lr = scaled_lr(0.004, 512)
    assert lr == pytest.approx(sched_ref["lr_peak_example_bs512"], rel=1e-12)
    values = [schedule_values(i, lr, OptimConfig(), TeacherConfig(), epoch_length) for i in range(1000)]
    for key in ("lr", "wd", "momentum", "last_layer_lr"):
        ours = torch.tensor([getattr(v, key) for v in values], dtype=torch.float64)
        torch.testing.assert_close(ours, sched_ref[key], atol=1e-12, rtol=1e-10)
    temps = torch.tensor([v.teacher_temp for v in values[:300]], dtype=torch.float64)
    torch.testing.assert_close(temps, sched_ref["teacher_temp"], atol=1e-12, rtol=1e-10)
    assert values[300].teacher_temp == sched_ref["teacher_temp_after_warmup_index_300"]
    # beyond the schedule: the final values
    last = schedule_values(10**6, lr, OptimConfig(), TeacherConfig(), epoch_length)
    assert (last.lr, last.wd, last.momentum) == (1e-6, 0.4, 1.0)


def test_cosine_schedule_closed_form():
    # freeze 2, warmup 3 (linspace 0 -> 1 over 3 points), cosine 1 -> 0 over 5
    vals = [cosine_schedule(i, 1.0, 0.0, 10, warmup_iters=3, freeze_iters=2) for i in range(11)]
    expected = [0, 0, 0, 0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(5)] + [0.0]
    assert vals == pytest.approx(expected, abs=1e-15)
    with pytest.raises(ValueError, match="exceed"):
        cosine_schedule(0, 1.0, 0.0, 4, warmup_iters=5)


def test_lr_scaling_rules():
    assert scaled_lr(0.004, 1024) == pytest.approx(0.004)
    assert scaled_lr(0.004, 256) == pytest.approx(0.002)
    assert scaled_lr(0.004, 512, "linear_wrt_256") == pytest.approx(0.008)
    cfg = PretrainConfig()
    cfg.train.batch_size_per_gpu = 64
    r = resolve_run(cfg, world_size=4)
    assert r.total_batch_size == 256 and r.lr == pytest.approx(0.002)
    assert r.total_iterations == 100 * 1250 == r.stop_iteration
    cfg.optim.lr = 0.01
    assert resolve_run(cfg).lr == 0.01  # an explicit lr wins


def _check_groups(groups: dict, ref: dict) -> None:
    assert set(groups) == set(ref)
    for name, r in ref.items():
        g = groups[name]
        assert g["lr_multiplier"] == pytest.approx(r["lr_multiplier"], rel=1e-12), name
        assert g["wd_multiplier"] == r["wd_multiplier"], name
        assert g["is_last_layer"] == r["is_last_layer"], name


def test_vits14_param_groups_match_official(groups_ref):
    model = create_model("dinov2_vits14", init_values=1e-5)
    groups = {g["name"]: g for g in get_params_groups_with_decay(model, lr_decay_rate=0.9, patch_embed_lr_mult=0.2)}
    _check_groups(groups, groups_ref["vits14_block_chunks0"])
    # as the official code (and unlike the issue text): tokens get weight decay
    assert groups["cls_token"]["wd_multiplier"] == groups["pos_embed"]["wd_multiplier"] == 1.0
    assert groups["blocks.0.ls1.gamma"]["wd_multiplier"] == 0.0


def test_chunked_block_names_parse(groups_ref):
    ref = groups_ref["vits14_block_chunks4"]
    for name, r in ref.items():
        mult = get_vit_lr_decay_rate(name, 0.9, 12) * (0.2 if "patch_embed" in name else 1.0)
        assert mult == pytest.approx(r["lr_multiplier"], rel=1e-12), name
    assert get_vit_layer_id("blocks.3.11.mlp.fc1.weight", 12) == 12
    assert get_vit_layer_id("blocks.3.mlp.fc1.weight", 12) == 4
    assert get_vit_layer_id("backbone.blocks.2.attn.qkv.weight", 12) == 3
    assert get_vit_layer_id("norm.weight", 12) == 13


def test_dino_head_param_groups_match_official(groups_ref):
    ref = groups_ref["dino_head"]
    head = DINOHead(384, 256, hidden_dim=128, bottleneck_dim=32)
    _check_groups({g["name"]: g for g in get_params_groups_with_decay(head, 0.9, 0.2)}, ref)


def test_fuse_apply_and_frozen_params():
    model = create_model("vit_pico_patch14")
    model.mask_token.requires_grad_(False)
    per_param = get_params_groups_with_decay(model, 0.9, 0.2)
    assert "mask_token" not in {g["name"] for g in per_param}
    fused = fuse_params_groups(per_param)
    assert sum(len(g["params"]) for g in fused) == len(per_param)
    assert len({(g["lr_multiplier"], g["wd_multiplier"], g["is_last_layer"]) for g in fused}) == len(fused)
    head = DINOHead(64, 32, hidden_dim=16, bottleneck_dim=8)
    fused += fuse_params_groups(get_params_groups_with_decay(head))
    opt = torch.optim.AdamW(fused)
    apply_optim_scheduler(opt, lr=0.1, wd=0.5, last_layer_lr=0.0)
    for g in opt.param_groups:
        assert g["weight_decay"] == pytest.approx(0.5 * g["wd_multiplier"])
        assert g["lr"] == pytest.approx(0.0 if g["is_last_layer"] else 0.1 * g["lr_multiplier"])
    assert any(g["is_last_layer"] for g in opt.param_groups)


def test_register_tokens_sit_in_the_embedding_group_as_officially():
    """dinov2/utils/param_groups.py gives ``register_tokens`` layer id 0 (the smallest layer-wise lr)."""
    model = create_model("vit_pico_patch14", num_register_tokens=2)
    groups = {g["name"]: g for g in get_params_groups_with_decay(model, lr_decay_rate=0.5)}
    assert groups["register_tokens"]["lr_multiplier"] == groups["cls_token"]["lr_multiplier"] == 0.5 ** (2 + 1)
    assert groups["norm.weight"]["lr_multiplier"] == 1.0


def test_schedules_in_iterations_override_the_epochs():
    optim = OptimConfig(
        epochs=10, warmup_epochs=5, warmup_iters=30, freeze_last_layer_epochs=1, freeze_last_layer_iters=7
    )
    teacher = TeacherConfig(warmup_teacher_temp_epochs=5, warmup_teacher_temp_iters=20, momentum_iters=50)
    epoch_length = 100  # the epoch-based values would be 500, 100 and 500 iterations
    v = [schedule_values(i, 1.0, optim, teacher, epoch_length) for i in (0, 6, 7, 29, 20, 50, 999)]
    assert v[0].lr == 0.0 and v[3].lr == pytest.approx(1.0)  # warmup ends at iteration 29 (inclusive, linspace)
    assert v[1].last_layer_lr == 0.0 and v[2].last_layer_lr > 0.0  # frozen for iterations 0..6
    assert v[4].teacher_temp == pytest.approx(teacher.teacher_temp)  # ramp over 20 iterations
    assert v[0].momentum == pytest.approx(teacher.momentum_teacher)
    assert v[5].momentum == pytest.approx(teacher.final_momentum_teacher)  # cosine over 50 iterations, then final
    default = schedule_values(50, 1.0, OptimConfig(epochs=10), TeacherConfig(), epoch_length)
    assert default.momentum < teacher.final_momentum_teacher  # without momentum_iters the ramp spans the run


def test_schedule_lengths_are_validated_with_the_field_name():
    from encoders.train.config import schedule_lengths

    with pytest.raises(ValueError, match=r"optim\.warmup_iters must be >= 0"):
        schedule_lengths(OptimConfig(warmup_iters=-1), TeacherConfig(), 10)
    with pytest.raises(ValueError, match="longer than the run"):
        schedule_lengths(OptimConfig(epochs=1, warmup_iters=11), TeacherConfig(), 10)
    with pytest.raises(ValueError, match=r"teacher\.momentum_iters must be >= 1"):
        schedule_lengths(OptimConfig(), TeacherConfig(momentum_iters=0), 10)
