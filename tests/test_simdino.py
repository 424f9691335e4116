"""SimDINO: closed forms of the coding rate and the alignment terms, their wiring in the meta-architecture, and
gradients that reach exactly the student."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from encoders.heads import DINOHead, ProjectionHead
from encoders.losses import SimDINOLoss, coding_rate, masked_patch_alignment
from encoders.losses.simdino_loss import balanced_coding_rate_weight
from encoders.train.ssl_meta_arch import SSLMetaArch, cross_view_similarity
from tests.test_ssl_meta_arch import make_batch, pico_cfg


def simdino_cfg(**overrides):
    return pico_cfg(objective="simdino", **{"dino.koleo_loss_weight": 0.0, **overrides})


def test_coding_rate_closed_forms():
    b, d, eps = 4, 8, 0.5
    orthonormal = torch.eye(d)[:b]  # b orthogonal unit rows: Z Z^T = I_b
    expected = 0.5 * b * math.log(1 + d / (b * eps))
    assert coding_rate(orthonormal, eps).item() == pytest.approx(expected, rel=1e-6)
    same = torch.zeros(b, d)
    same[:, 0] = 1.0  # b copies of one unit vector: one eigenvalue b
    assert coding_rate(same, eps).item() == pytest.approx(0.5 * math.log(1 + d / eps), rel=1e-6)
    # more rows than dims: the d x d Gram gives the same value as the b x b one would
    z = F.normalize(torch.randn(12, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    full = 0.5 * torch.logdet(torch.eye(12) + (5 / (12 * eps)) * z @ z.T)
    assert coding_rate(z, eps).item() == pytest.approx(full.item(), rel=1e-5)
    assert coding_rate(orthonormal, eps) > coding_rate(same, eps)  # spreading raises the rate
    with pytest.raises(ValueError, match="eps must be > 0"):
        coding_rate(z, 0.0)


def test_alignment_counts_every_pair_but_a_view_with_itself():
    g = torch.Generator().manual_seed(1)
    t1, t2, l1 = (F.normalize(torch.randn(3, 6, generator=g), dim=-1) for _ in range(3))
    s1, s2 = t1.clone(), -t2.clone()  # student view 1 equals teacher view 1, view 2 is its opposite
    value = SimDINOLoss.alignment([s1, s2, l1], [t1, t2])

    def dist(a, b):
        return (1 - F.cosine_similarity(a, b, dim=-1)).mean()

    expected = (dist(s1, t2) + dist(s2, t1) + dist(l1, t1) + dist(l1, t2)) / 4
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert SimDINOLoss.alignment([t1, t2], [t1, t2]).item() == pytest.approx(dist(t1, t2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 views"):
        SimDINOLoss.alignment([t1], [t1])


def test_expansion_is_the_weighted_rate_of_the_mean_embedding():
    g = torch.Generator().manual_seed(2)
    s, t = ([F.normalize(torch.randn(5, 7, generator=g), dim=-1) for _ in range(2)] for _ in range(2))
    loss = SimDINOLoss(eps=0.1, coding_rate_weight=2.0)
    w = 2.0 * balanced_coding_rate_weight(5, 7)
    assert w == pytest.approx(2.0 * (7 + 5) / (7 * 5))
    expected = sum(w * coding_rate((a + b) / 2, 0.1) for a, b in zip(s, t)) / 2
    assert loss.expansion(s, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_masked_patch_alignment_weights_each_image_once():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # distances 0, 1, 2
    w = torch.tensor([0.5, 0.5, 1.0])  # image 0 has two masked patches, image 1 one
    assert masked_patch_alignment(s, t, w, n_images=4).item() == pytest.approx((0.5 * 0 + 0.5 * 1 + 2) / 4)
    with pytest.raises(ValueError, match="same masked patches"):
        masked_patch_alignment(s, t[:2], w, 4)


def test_projection_head_has_no_prototypes_and_outputs_unit_vectors():
    head = ProjectionHead(16, nlayers=2, hidden_dim=32, bottleneck_dim=8)
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    assert not any("last_layer" in k for k in head.state_dict())
    # the DINO head shares the MLP layout, so only its last layer differs
    dino = DINOHead(16, 10, nlayers=2, hidden_dim=32, bottleneck_dim=8)
    assert {k for k in dino.state_dict() if not k.startswith("last_layer")} == set(head.state_dict())


def test_prototype_cosine_closed_form():
    head = DINOHead(4, 3, nlayers=1, bottleneck_dim=2)
    with torch.no_grad():
        head.last_layer.weight_v.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    # pairs: (0,1) 0, (0,2) -1, (1,2) 0 -> mean -1/3
    assert head.mean_prototype_cosine().item() == pytest.approx(-1 / 3, abs=1e-6)
    with torch.no_grad():
        head.last_layer.weight_v.copy_(torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 0.0]]))
    assert head.mean_prototype_cosine().item() == pytest.approx(1.0, abs=1e-6)


def test_cross_view_similarity_separates_same_and_other_images():
    a = torch.eye(4) + 5.0  # a large common component: centring removes it
    out = cross_view_similarity(a, a.clone())
    assert out["teacher_crossview_same"].item() == pytest.approx(1.0)
    assert out["teacher_crossview_other"].item() == pytest.approx(-1 / 3, abs=1e-5)  # centred one-hot rows


def test_simdino_gradients_reach_exactly_the_student_and_losses_match_a_manual_computation():
    cfg = simdino_cfg()
    model = SSLMetaArch(cfg).train()
    assert isinstance(model.student.dino_head, ProjectionHead) and not hasattr(model, "dino_loss")
    ref = copy.deepcopy(model)
    batch = make_batch(cfg, seed=4)
    losses = model.forward_backward(batch, teacher_temp=0.04)
    assert {"simdino_alignment_loss", "simdino_coding_rate_loss", "simdino_patch_loss"} <= set(losses)
    assert "teacher_entropy" not in losses and "prototype_cosine" not in losses
    for name, p in model.student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())

    t, s = ref.teacher, ref.student
    g, loc, masks = batch["collated_global_crops"], batch["collated_local_crops"], batch["collated_masks"]
    idx, w = batch["mask_indices_list"], batch["masks_weight"]
    n_local = cfg.crops.local_crops_number
    with torch.no_grad():
        tout = t.backbone.forward_features(g)
        tcls = t.dino_head(tout["x_norm_clstoken"])
        tpatch = t.dino_head(tout["x_norm_patchtokens"].flatten(0, 1)[idx])
    gout, lout = s.backbone.forward_features([g, loc], [masks, None])
    scls = s.dino_head(gout["x_norm_clstoken"]).chunk(2)
    sloc = s.dino_head(lout["x_norm_clstoken"]).chunk(n_local)
    t1, t2 = tcls.chunk(2)
    align = SimDINOLoss.alignment([*scls, *sloc], [t1, t2])
    rate = (
        sum(
            balanced_coding_rate_weight(a.shape[0], a.shape[1]) * coding_rate((a + b) / 2, cfg.simdino.coding_rate_eps)
            for a, b in zip(scls, (t1, t2))
        )
        / 2
    )
    spatch = s.dino_head(gout["x_norm_patchtokens"].flatten(0, 1)[idx])
    patch = ((1 - F.cosine_similarity(spatch, tpatch, dim=-1)) * w).sum() / g.shape[0]
    torch.testing.assert_close(losses["simdino_alignment_loss"], align, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["simdino_coding_rate_loss"], -rate, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["simdino_patch_loss"], patch, atol=1e-5, rtol=1e-5)


def test_simdino_separate_patch_head_and_bad_settings():
    cfg = simdino_cfg(**{"ibot.separate_head": True, "ibot.head_bottleneck_dim": 16})
    model = SSLMetaArch(cfg)
    assert isinstance(model.student.ibot_head, ProjectionHead)
    model.forward_backward(make_batch(cfg), teacher_temp=0.04)
    assert all(p.grad is not None for p in model.student.ibot_head.parameters())
    with pytest.raises(ValueError, match="coding_rate_eps must be > 0"):
        SSLMetaArch(simdino_cfg(**{"simdino.coding_rate_eps": 0.0}))
    with pytest.raises(ValueError, match="objective must be dinov2 or simdino"):
        SSLMetaArch(pico_cfg(objective="dino"))
