"""Numerical parity with the official DINOv2 implementation (reference outputs on random weights)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

import encoders

ATOL = RTOL = 1e-4


# The vendored compact model (embed 96, 3 heads) always; the full-width ViT-S/14 pair (embed 384, 25 MB)
# when SEMNAV_FIXTURES points at it (tests/fixtures/README.md). fixture set -> (pytest fixture, file stem, inputs).
CASES = {
    "compact": ("dinov2_fixtures", "vit_d96_depth2", ["x56", "x42x70"]),
    "vits14": ("full_width_fixtures", "vits14_depth2", ["x224", "x98x140"]),
}
INPUTS = [(fixture_set, name) for fixture_set, (_, _, names) in CASES.items() for name in names]


@functools.cache
def _load_reference(folder: Path, stem: str):
    weights = torch.load(folder / f"{stem}_weights.pt", weights_only=True)
    io = torch.load(folder / f"{stem}_io.pt", weights_only=True)
    config = weights["config"]
    model = encoders.create_model(
        "dinov2_vits14", depth=config["depth"], embed_dim=config["embed_dim"], num_heads=config["num_heads"]
    )
    model.load_state_dict(weights["state_dict"], strict=True)
    return model.eval(), io


@pytest.fixture
def reference(request, fixture_set: str):
    """(official-weights model, reference io) of one fixture set."""
    fixture_name, stem, _ = CASES[fixture_set]
    return _load_reference(request.getfixturevalue(fixture_name), stem)


FF_KEYS = ["x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm"]


@torch.no_grad()
@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_forward_features_match_reference(reference, name):
    model, io = reference
    out = model.forward_features(io["inputs"][name])
    for key in FF_KEYS:
        torch.testing.assert_close(out[key], io["outputs"][f"{name}/ff/{key}"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(model(io["inputs"][name]), io["outputs"][f"{name}/forward"], atol=ATOL, rtol=RTOL)


@torch.no_grad()
@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_masked_forward_matches_reference(reference, name):
    model, io = reference
    masks = io["masks"][name]
    out = model.forward_features(io["inputs"][name], masks=masks)
    for key in FF_KEYS:
        torch.testing.assert_close(out[key], io["outputs"][f"{name}/ff_masked/{key}"], atol=ATOL, rtol=RTOL)
    assert torch.equal(out["masks"], masks)
    unmasked = model.forward_features(io["inputs"][name])["x_norm_clstoken"]
    assert not torch.allclose(out["x_norm_clstoken"], unmasked, atol=1e-3)  # masks change the output


@torch.no_grad()
@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_intermediate_layers_match_reference(reference, name):
    model, io = reference
    x = io["inputs"][name]
    outs = model.get_intermediate_layers(x, n=2, reshape=True, return_class_token=True, norm=True)
    ref_patch = io["outputs"][f"{name}/gil_n2_reshape_norm/patch"]
    ref_cls = io["outputs"][f"{name}/gil_n2_reshape_norm/cls"]
    assert len(outs) == len(ref_patch) == 2
    for (patch, cls), rp, rc in zip(outs, ref_patch, ref_cls):
        torch.testing.assert_close(patch, rp, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(cls, rc, atol=ATOL, rtol=RTOL)
    (first,) = model.get_intermediate_layers(x, n=[0], norm=False)
    torch.testing.assert_close(first, io["outputs"][f"{name}/gil_idx0_nonorm"], atol=ATOL, rtol=RTOL)


@torch.no_grad()
@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_interpolated_pos_encoding_matches_reference(reference, name):
    model, io = reference
    x = io["inputs"][name]
    tokens = model.prepare_tokens_with_masks(x)[:, : 1 + (x.shape[2] // 14) * (x.shape[3] // 14)]
    pos = model.interpolate_pos_encoding(tokens, x.shape[2], x.shape[3])
    torch.testing.assert_close(pos, io["outputs"][f"{name}/interpolate_pos_encoding"], atol=ATOL, rtol=RTOL)


def test_official_state_dict_keys_and_shapes(dinov2_fixtures):
    """Every key and shape of the 8 public backbones, built on the meta device (no memory)."""
    reference = json.loads((dinov2_fixtures / "hub_state_dict_keys.json").read_text())
    assert len(reference) == 8
    for name, ref in reference.items():
        with torch.device("meta"):
            model = encoders.create_model(name)
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert shapes == ref["keys"], name
        assert sum(p.numel() for p in model.parameters()) == ref["n_params"], name
        ctor = ref["ctor"]
        assert model.num_register_tokens == ctor["num_register_tokens"]
        assert model.interpolate_antialias == ctor["interpolate_antialias"]
        assert model.interpolate_offset == ctor["interpolate_offset"]
        assert model.num_heads == ctor["num_heads"]
