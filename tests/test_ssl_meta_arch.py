"""The DINOv2 meta-architecture: gradients, EMA, loss wiring, options, export, and the trainer loop on
synthetic batches (no image files)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from encoders import create_model
from encoders.data.collate import MaskedMultiCropCollate
from encoders.train.config import PRESETS, PretrainConfig
from encoders.train.ssl_meta_arch import SSLMetaArch, normalized_entropy
from encoders.train.trainer import Trainer
from encoders.utils.config import replace_nested


def pico_cfg(**overrides) -> PretrainConfig:
    return replace_nested(PretrainConfig(), {**PRESETS["pico"], "student.drop_path_rate": 0.0, **overrides})


def make_batch(cfg: PretrainConfig, seed: int = 0, batch_size: int | None = None) -> dict:
    """A collated batch of random crops (masks drawn by the real collate, seeded)."""
    b = batch_size or cfg.train.batch_size_per_gpu
    g = torch.Generator().manual_seed(seed)
    S, s, L = cfg.crops.global_crops_size, cfg.crops.local_crops_size, cfg.crops.local_crops_number
    samples = [
        (
            {
                "global_crops": [torch.randn(3, S, S, generator=g) for _ in range(2)],
                "local_crops": [torch.randn(3, s, s, generator=g) for _ in range(L)],
            },
            seed * 1000 + i,
        )
        for i in range(b)
    ]
    collate = MaskedMultiCropCollate(14, cfg.ibot.mask_ratio_min_max, mask_probability=1.0, seed=seed)
    return collate(samples)


class SyntheticData:
    """A data source for :class:`Trainer`: batch ``i`` depends only on ``i`` (so resume is exact)."""

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg

    def global_crops_size_at(self, iteration: int) -> int:
        return self.cfg.crops.global_crops_size

    def loader(self, start_iteration: int = 0):
        i = start_iteration
        while True:
            yield make_batch(self.cfg, seed=i)
            i += 1


def test_gradients_reach_exactly_the_student():
    cfg = pico_cfg()
    model = SSLMetaArch(cfg).train()
    assert all(not p.requires_grad for p in model.teacher.parameters())
    losses = model.forward_backward(make_batch(cfg), teacher_temp=0.04)
    assert set(losses) == {
        "dino_local_crops_loss",
        "dino_global_crops_loss",
        "koleo_loss",
        "ibot_loss",
        "total_loss",
        "student_cls_std",
        "teacher_entropy",
        "head_spread",
        "prototype_cosine",
        "teacher_crossview_same",
        "teacher_crossview_other",
    }
    assert 0.0 <= losses["teacher_entropy"] <= 1.0
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(v for k, v in losses.items() if k.endswith("_loss") and k != "total_loss")
    torch.testing.assert_close(losses["total_loss"], total)
    for name, p in model.student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.teacher.parameters())
    # drop path only in the student
    assert model.teacher.backbone.blocks[0].sample_drop_ratio == 0.0


def test_loss_terms_match_a_manual_official_computation():
    """Recompute the official formulas with separate head calls: pairing (teacher crops swapped), scaling
    (1 / (2 + 2 * n_local) per pair), KoLeo per global crop, iBOT per-image weighting."""
    cfg = pico_cfg()
    model = SSLMetaArch(cfg).train()
    ref = copy.deepcopy(model)
    batch = make_batch(cfg, seed=3)
    losses = model.forward_backward(batch, teacher_temp=0.05)

    t, s = ref.teacher, ref.student
    g, loc, masks = batch["collated_global_crops"], batch["collated_local_crops"], batch["collated_masks"]
    idx = batch["mask_indices_list"]
    n_local = cfg.crops.local_crops_number
    with torch.no_grad():
        tout = t.backbone.forward_features(g)
        tcls = t.dino_head(tout["x_norm_clstoken"])
        t1, t2 = tcls.chunk(2)
        tdino = F.softmax(torch.cat((t2, t1)) / 0.05, dim=-1)  # center is still 0
        tib = F.softmax(t.dino_head(tout["x_norm_patchtokens"].flatten(0, 1)[idx]) / 0.05, dim=-1)
    gout, lout = s.backbone.forward_features([g, loc], [masks, None])
    sg = F.log_softmax(s.dino_head(gout["x_norm_clstoken"]) / 0.1, dim=-1)
    sl = F.log_softmax(s.dino_head(lout["x_norm_clstoken"]) / 0.1, dim=-1)
    n_terms = 2 + 2 * n_local
    local = -sum((tc * lc).sum(-1).mean() for lc in sl.chunk(n_local) for tc in tdino.chunk(2)) / n_terms
    glob = -(tdino * sg).sum(-1).mean() * 2 / n_terms
    torch.testing.assert_close(losses["dino_local_crops_loss"], local, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["dino_global_crops_loss"], glob, atol=1e-5, rtol=1e-5)
    cls = gout["x_norm_clstoken"]
    koleo = 0.1 * sum(ref.koleo_loss(c) for c in cls.chunk(2))
    torch.testing.assert_close(losses["koleo_loss"], koleo, atol=1e-5, rtol=1e-5)
    sp = F.log_softmax(s.dino_head(gout["x_norm_patchtokens"].flatten(0, 1)[idx]) / 0.1, dim=-1)
    per_patch = (tib * sp).sum(-1)
    weights = 1.0 / masks.sum(-1).clamp(min=1).float()
    ibot = -(per_patch * weights[idx // masks.shape[1]]).sum() / masks.shape[0]
    torch.testing.assert_close(losses["ibot_loss"], ibot, atol=1e-5, rtol=1e-5)


def test_ema_update_closed_form():
    cfg = pico_cfg()
    model = SSLMetaArch(cfg)
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p))
    teacher0 = copy.deepcopy(model.teacher.state_dict())
    student = model.student.state_dict()
    model.update_teacher(1.0)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher0[k])
    model.update_teacher(0.9)
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, 0.9 * teacher0[k] + 0.1 * student[k])
    model.update_teacher(0.0)
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, student[k])


@pytest.mark.parametrize("centering", ["softmax", "sinkhorn_knopp"])
def test_centering_modes_and_separate_ibot_head(centering):
    cfg = pico_cfg(**{"train.centering": centering, "ibot.separate_head": True, "ibot.head_n_prototypes": 64})
    model = SSLMetaArch(cfg).train()
    assert any(k.startswith("student.ibot_head.last_layer") for k in model.state_dict())
    assert model.ibot_patch_loss.center.shape == (1, 1, 64)
    losses = model.forward_backward(make_batch(cfg), teacher_temp=0.07)
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.student.ibot_head.parameters())
    centered = centering == "softmax"
    assert (model.dino_loss.updated is False) == centered  # softmax centering schedules a center update


def test_bf16_autocast_path_runs_on_cpu():
    cfg = pico_cfg(**{"train.precision": "bf16"})
    model = SSLMetaArch(cfg).train()
    assert model.autocast_dtype == torch.bfloat16
    losses = model.forward_backward(make_batch(cfg), teacher_temp=0.04)
    assert torch.isfinite(losses["total_loss"])
    assert all(p.grad.dtype == torch.float32 for p in model.student.parameters())


def test_crop_sizes_must_be_multiples_of_the_patch():
    with pytest.raises(
        ValueError, match=r"crops.global_crops_size=60 is not a multiple of the patch size 14.*56 or 70"
    ):
        SSLMetaArch(pico_cfg(**{"crops.global_crops_size": 60}))
    with pytest.raises(ValueError, match="unknown encoder"):
        SSLMetaArch(pico_cfg(**{"student.arch": "vit_nope"}))


def test_trainer_freezes_last_layer_then_exports_a_loadable_backbone(tmp_path):
    """One epoch of 2 iterations with the last layer frozen: prototypes unchanged, everything else trained;
    the exported teacher loads with create_model(arch, pretrained=PATH)."""
    cfg = pico_cfg(
        **{
            "output": str(tmp_path / "run"),
            "train.epoch_length": 2,
            "optim.epochs": 2,
            "train.max_iterations": 2,
            "train.progress": False,
            "optim.freeze_last_layer_epochs": 1,
        }
    )
    model = SSLMetaArch(cfg)
    before = copy.deepcopy(model.student.state_dict())
    result = Trainer(cfg, model, SyntheticData(cfg)).fit()
    assert (result.start_iteration, result.end_iteration, result.interrupted) == (0, 2, False)
    after = model.student.state_dict()
    assert torch.equal(after["dino_head.last_layer.weight_v"], before["dino_head.last_layer.weight_v"])
    assert not torch.equal(after["dino_head.mlp.0.weight"], before["dino_head.mlp.0.weight"])
    assert not torch.equal(after["backbone.blocks.0.attn.qkv.weight"], before["backbone.blocks.0.attn.qkv.weight"])
    loaded = create_model("vit_pico_patch14", pretrained=result.backbone)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.teacher.backbone.state_dict()[k]), k
    assert [h["iteration"] for h in result.history] == [1.0, 2.0]
    for key in ("lr", "wd", "momentum", "teacher_temp", "grad_norm", "student_cls_std", "images_per_s"):
        assert key in result.history[-1]


def test_normalized_entropy_tells_the_two_collapse_modes_apart():
    uniform = torch.full((3, 8), 1 / 8)
    one_hot = F.one_hot(torch.tensor([0, 5, 7]), 8).float()
    assert normalized_entropy(uniform).item() == pytest.approx(1.0)
    assert normalized_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < normalized_entropy(torch.softmax(torch.randn(2, 4, 8), -1)).item() < 1.0


def test_trainer_warns_once_when_the_teacher_targets_turn_uniform(caplog):
    from types import SimpleNamespace

    fake = SimpleNamespace(cfg=pico_cfg(), ctx=SimpleNamespace(is_main=True))  # warm-up: 1 epoch of 5 iterations
    with caplog.at_level("WARNING", logger="encoders.train.trainer"):
        assert not Trainer._warn_if_uniform(fake, {"teacher_entropy": 0.999}, 2, False)  # still warming up
        assert not Trainer._warn_if_uniform(fake, {"teacher_entropy": 0.5}, 6, False)
        assert Trainer._warn_if_uniform(fake, {"teacher_entropy": 0.999}, 6, False)
        assert Trainer._warn_if_uniform(fake, {"teacher_entropy": 0.999}, 7, True)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "uniform" in warnings[0] and "monitor/teacher_entropy" in warnings[0]
