"""DINO, iBOT and KoLeo losses: parity with the official implementation (fixtures), Sinkhorn-Knopp safety."""

from __future__ import annotations

import pytest
import torch

from encoders.losses import DINOLoss, KoLeoLoss, iBOTPatchLoss, sinkhorn_knopp

ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def ref(dinov2_fixtures):
    return torch.load(dinov2_fixtures / "losses.pt", weights_only=True)


def _reference_sinkhorn(logits: torch.Tensor, temp: float, n_iterations: int = 3) -> torch.Tensor:
    """The official single-process iteration in the linear domain (overflows for large logits)."""
    q = torch.exp(logits.double() / temp).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(n_iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).t().float()


def test_dino_softmax_centering_two_steps_match_official(ref):
    d = ref["dino"]
    loss = DINOLoss(d["K"], student_temp=d["student_temp"], center_momentum=d["center_momentum"])
    t = d["teacher_temp"]
    torch.testing.assert_close(loss.center, d["center_before"])
    step1 = loss.softmax_center_teacher(d["teacher_out_step1"], t)
    torch.testing.assert_close(step1, d["softmax_center_step1"], atol=ATOL, rtol=RTOL)
    loss.update_center(d["teacher_out_step1"])
    # the update is applied lazily, at the next softmax_center_teacher call
    torch.testing.assert_close(loss.center, d["center_after_update_center_call"])
    step2 = loss.softmax_center_teacher(d["teacher_out_step2"], t)
    torch.testing.assert_close(step2, d["softmax_center_step2"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(loss.center, d["center_after_step2_apply"], atol=ATOL, rtol=RTOL)
    assert not torch.equal(loss.center, d["center_before"])
    loss.update_center(d["teacher_out_step2"])
    loss.apply_center_update()
    torch.testing.assert_close(loss.center, d["center_after_second_apply"], atol=ATOL, rtol=RTOL)


def test_dino_cross_entropy_matches_official(ref):
    d = ref["dino"]
    loss = DINOLoss(d["K"], student_temp=d["student_temp"])
    teacher = d["softmax_center_step2"]
    local = loss(d["student_local"].chunk(d["n_local_crops"]), teacher.chunk(2))
    torch.testing.assert_close(local, d["loss_local_raw"], atol=ATOL, rtol=RTOL)
    glob = loss([d["student_global"]], [teacher])
    torch.testing.assert_close(glob, d["loss_global_raw"], atol=ATOL, rtol=RTOL)


def test_center_update_survives_state_dict(ref):
    """A checkpoint taken between update_center and the next step holds the center that step would use."""
    d = ref["dino"]
    loss = DINOLoss(d["K"])
    loss.update_center(d["teacher_out_step1"])
    state = loss.state_dict()
    torch.testing.assert_close(state["center"], d["center_after_step2_apply"], atol=ATOL, rtol=RTOL)
    fresh = DINOLoss(d["K"])
    fresh.load_state_dict(state)
    out = fresh.softmax_center_teacher(d["teacher_out_step2"], d["teacher_temp"])
    torch.testing.assert_close(out, d["softmax_center_step2"], atol=ATOL, rtol=RTOL)


def test_ibot_centering_and_masked_loss_match_official(ref):
    i = ref["ibot"]
    c = i["collate"]
    loss = iBOTPatchLoss(i["K"], student_temp=i["student_temp"], center_momentum=i["center_momentum"])
    t = i["teacher_temp"]
    step1 = loss.softmax_center_teacher(i["teacher_masked_step1"].unsqueeze(0), t)[0]  # center is (1, 1, K)
    torch.testing.assert_close(step1, i["softmax_center_step1"], atol=ATOL, rtol=RTOL)
    loss.update_center(i["teacher_masked_step1"].unsqueeze(0))  # (1, M, K) as in the meta-architecture
    step2 = loss.softmax_center_teacher(i["teacher_masked_step2"].unsqueeze(0), t)[0]
    torch.testing.assert_close(step2, i["softmax_center_step2"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(loss.center, i["center_after_step2_apply"], atol=ATOL, rtol=RTOL)

    n = c["mask_indices_list"].shape[0]
    masked = loss.forward_masked(
        i["student_masked"], step2, c["collated_masks"], n_masked_patches=n, masks_weight=c["masks_weight"]
    )
    torch.testing.assert_close(masked, i["loss_forward_masked"], atol=ATOL, rtol=RTOL)
    no_weights = loss.forward_masked(i["student_masked"], step2, c["collated_masks"])
    torch.testing.assert_close(no_weights, i["loss_forward_masked_weights_none"], atol=ATOL, rtol=RTOL)


def test_ibot_dense_loss_matches_official_and_packed_form(ref):
    i = ref["ibot"]
    c = i["collate"]
    loss = iBOTPatchLoss(i["K"], student_temp=i["student_temp"])
    dense = loss(i["student_patch_logits"], i["dense_teacher_softmax"], c["collated_masks"])
    torch.testing.assert_close(dense, i["loss_forward_dense"], atol=ATOL, rtol=RTOL)
    # the packed form on the masked rows gives the same number
    flat = c["collated_masks"].flatten()
    packed = loss.forward_masked(
        i["student_patch_logits"].flatten(0, 1)[flat],
        i["dense_teacher_softmax"].flatten(0, 1)[flat],
        c["collated_masks"],
        masks_weight=c["masks_weight"],
    )
    torch.testing.assert_close(packed, dense, atol=ATOL, rtol=RTOL)


def test_koleo_matches_official(ref):
    k = ref["koleo"]
    loss = KoLeoLoss()
    torch.testing.assert_close(loss(k["input"]), k["loss_full"], atol=ATOL, rtol=RTOL)
    c0, c1 = k["input"].chunk(2)
    torch.testing.assert_close(loss(c0), k["loss_chunk0"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(loss(c1), k["loss_chunk1"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(0.1 * (loss(c0) + loss(c1)), k["training_term_weight0.1"], atol=ATOL, rtol=RTOL)


def test_koleo_closed_form_and_gradient():
    # 4 unit vectors at the corners of a square on a circle: each nearest neighbour is at distance sqrt(2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], requires_grad=True)
    out = KoLeoLoss()(x)
    torch.testing.assert_close(out, -torch.log(torch.tensor(2.0).sqrt() + 1e-8))
    out.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        KoLeoLoss()(torch.randn(1, 8))


@pytest.mark.parametrize("temp", [0.04, 0.07, 0.1])
def test_sinkhorn_equals_official_iteration_on_normal_logits(temp):
    logits = torch.randn(32, 256) * 2.0
    ours = DINOLoss(256).sinkhorn_knopp_teacher(logits, temp)
    torch.testing.assert_close(ours, _reference_sinkhorn(logits, temp), atol=1e-5, rtol=1e-4)


def test_sinkhorn_is_safe_for_huge_logits():
    logits = torch.randn(16, 128) * 1e4  # exp(1e4 / 0.04) overflows in the linear-domain iteration
    assert not torch.isfinite(torch.exp(logits / 0.04)).all()
    q = DINOLoss(128).sinkhorn_knopp_teacher(logits, 0.04)
    assert torch.isfinite(q).all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(16))  # one assignment per sample
    qi = iBOTPatchLoss(128).sinkhorn_knopp_teacher(logits, 0.04, torch.tensor([16]))
    torch.testing.assert_close(qi, q)


def test_sinkhorn_huge_per_prototype_offsets_cancel_exactly():
    """A per-prototype constant cancels in the first row normalisation, so logits + huge offsets must give the
    official result of the plain logits (which the linear-domain iteration cannot compute: exp overflows)."""
    logits = torch.randn(32, 64) * 2.0
    offsets = torch.randn(64) * 500.0  # (logit + offset) / 0.04 ~ 1e4: exp overflows even in float64
    q = sinkhorn_knopp(logits + offsets, 0.04, 32)
    assert not torch.isfinite(_reference_sinkhorn(logits + offsets, 0.04)).all()
    torch.testing.assert_close(q, _reference_sinkhorn(logits, 0.04), atol=5e-3, rtol=0)


def test_sinkhorn_balances_prototypes():
    logits = torch.randn(64, 16) + torch.linspace(0, 3, 16)  # biased towards the last prototypes
    q = sinkhorn_knopp(logits, 0.5, 64, n_iterations=50)
    torch.testing.assert_close(q.sum(dim=0), torch.full((16,), 64 / 16), atol=1e-3, rtol=1e-3)


def test_ibot_sinkhorn_does_not_modify_the_count():
    n = torch.tensor([5])
    iBOTPatchLoss(8).sinkhorn_knopp_teacher(torch.randn(5, 8), 0.07, n)
    assert n.item() == 5
