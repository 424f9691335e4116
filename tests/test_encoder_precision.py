"""bf16 autocast keeps the encoder's features: cosine >= 0.999 to fp32 on the parity fixtures' models.

The parity tests themselves (``test_encoder_parity.py``) stay in fp32; this checks the bf16 path every CLI takes
under ``--precision bf16`` (and ``auto`` on CUDA and native-bf16 CPUs) against the same models and inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoders.eval.features import backbone_feature_fn, patch_feature_grid
from tests.test_encoder_parity import INPUTS, reference  # noqa: F401  (the parity tests' models and inputs)

MIN_COSINE = 0.999


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``(..., D)`` tensors, flattened to ``(M,)``."""
    return F.cosine_similarity(a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double(), dim=1)


@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_bf16_features_match_fp32_within_cosine(reference, name):  # noqa: F811
    model, io = reference
    x = io["inputs"][name]
    with torch.inference_mode():
        fp32 = backbone_feature_fn(model)(x)
        bf16 = backbone_feature_fn(model, torch.bfloat16)(x)
    for key in ("cls", "patch_mean"):
        assert bf16[key].dtype == torch.float32  # features leave the bf16 path as fp32
        cos = _cosine(bf16[key], fp32[key])
        assert cos.min() >= MIN_COSINE, f"{key}: min cosine {cos.min():.5f}"
    # fp32 is the official model's output; bf16 is close to it but really ran in bf16
    torch.testing.assert_close(fp32["cls"], io["outputs"][f"{name}/ff/x_norm_clstoken"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(bf16["cls"], fp32["cls"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("fixture_set", "name"), INPUTS)
def test_bf16_patch_grid_matches_fp32_for_every_patch(reference, name):  # noqa: F811
    model, io = reference
    x = io["inputs"][name]
    fp32 = patch_feature_grid(model, x)
    bf16 = patch_feature_grid(model, x, torch.bfloat16)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    cos = _cosine(bf16, fp32)  # one cosine per patch
    assert cos.min() >= MIN_COSINE, f"worst patch cosine {cos.min():.5f}"
    torch.testing.assert_close(fp32.flatten(1, 2), io["outputs"][f"{name}/ff/x_norm_patchtokens"], atol=1e-4, rtol=1e-4)
