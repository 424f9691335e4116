"""DINOHead: official state-dict keys and outputs, weight-norm maths, gradients, no warnings."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from encoders.heads import DINOHead, WeightNormLinear


@pytest.fixture(scope="module")
def head_ref(dinov2_fixtures):
    return torch.load(dinov2_fixtures / "losses.pt", weights_only=True)["dino_head"]


def test_dino_head_loads_official_state_dict_and_matches_output(head_ref):
    head = DINOHead(**head_ref["config"])
    assert list(head.state_dict()) == list(head_ref["state_dict"])
    head.load_state_dict(head_ref["state_dict"], strict=True)
    with torch.no_grad():
        out = head(head_ref["input"])
    torch.testing.assert_close(out, head_ref["output"], atol=1e-4, rtol=1e-4)


def test_dino_head_state_dict_round_trip_and_parametrization_keys(head_ref):
    head = DINOHead(**head_ref["config"])
    head.load_state_dict(head_ref["state_dict"])
    # a head saved with torch.nn.utils.parametrizations.weight_norm loads too
    sd = dict(head_ref["state_dict"])
    sd["last_layer.parametrizations.weight.original0"] = sd.pop("last_layer.weight_g")
    sd["last_layer.parametrizations.weight.original1"] = sd.pop("last_layer.weight_v")
    other = DINOHead(**head_ref["config"])
    other.load_state_dict(sd, strict=True)
    x = torch.randn(5, head_ref["config"]["in_dim"])
    torch.testing.assert_close(other(x), head(x))


def test_weight_norm_linear_equals_torch_weight_norm():
    ref = nn.utils.parametrizations.weight_norm(nn.Linear(16, 24, bias=False))
    ours = WeightNormLinear(16, 24)
    with torch.no_grad():
        ours.weight_g.copy_(torch.rand(24, 1) + 0.5)
        ours.weight_v.copy_(torch.randn(24, 16))
        ref.parametrizations.weight.original0.copy_(ours.weight_g)
        ref.parametrizations.weight.original1.copy_(ours.weight_v)
    x = torch.randn(7, 16)
    torch.testing.assert_close(ours(x), ref(x))
    # rows of the effective weight have norm g
    torch.testing.assert_close(ours.weight.norm(dim=1, keepdim=True), ours.weight_g.detach(), atol=1e-5, rtol=1e-5)


def test_dino_head_init_shapes_gradients_and_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = DINOHead(32, 100, hidden_dim=48, bottleneck_dim=8, nlayers=3)
    assert torch.equal(head.last_layer.weight_g, torch.ones(100, 1))  # official: g filled with 1
    x = torch.randn(4, 6, 32)
    out = head(x)
    assert out.shape == (4, 6, 100)
    # the bottleneck is L2-normalised and g = 1, so every logit is a cosine: |logit| <= 1
    assert out.abs().max() <= 1.0 + 1e-5
    out.square().sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("nlayers, n_linear", [(1, 1), (2, 2), (3, 3), (4, 4)])
def test_dino_head_depth(nlayers, n_linear):
    head = DINOHead(16, 10, nlayers=nlayers, hidden_dim=20, bottleneck_dim=8)
    assert sum(isinstance(m, nn.Linear) for m in head.mlp.modules()) == n_linear


def test_dino_head_rejects_bad_sizes():
    with pytest.raises(ValueError, match="out_dim"):
        DINOHead(16, 0)
