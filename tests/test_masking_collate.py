"""Block-wise masking statistics and the multi-crop collate (official output format, fixture parity)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from encoders.data.collate import MaskedMultiCropCollate, collate_data_and_cast, pack_masks
from encoders.data.masking import MaskingGenerator


def _samples(n: int, global_size: int = 56, local_size: int = 28, n_local: int = 3, start: int = 0):
    """``n`` fake multi-crop samples whose pixels encode (sample, crop) so the stacking order can be checked."""
    out = []
    for s in range(n):
        g = [torch.full((3, global_size, global_size), float(100 * s + c)) for c in range(2)]
        loc = [torch.full((3, local_size, local_size), float(100 * s + 10 + c)) for c in range(n_local)]
        out.append(({"global_crops": g, "global_crops_teacher": g, "local_crops": loc, "offsets": ()}, start + s))
    return out


def _neighbour_fraction(mask: np.ndarray) -> float:
    """Fraction of masked patches with at least one masked 4-neighbour."""
    m = np.pad(mask, 1)
    nb = m[:-2, 1:-1] | m[2:, 1:-1] | m[1:-1, :-2] | m[1:-1, 2:]
    return float((mask & nb).sum() / max(mask.sum(), 1))


def test_single_block_is_a_filled_rectangle():
    gen = MaskingGenerator((14, 14), max_num_patches=98)
    rng = random.Random(0)
    for _ in range(50):
        mask = np.zeros((14, 14), dtype=bool)
        delta = gen._mask(mask, 40, rng)
        if delta == 0:
            continue
        rows, cols = np.nonzero(mask)
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and box.size == delta <= 40


def test_masks_respect_budget_and_are_blocky():
    gen = MaskingGenerator((16, 16), max_num_patches=128)
    rng = random.Random(1)
    fractions, ratios = [], []
    for _ in range(200):
        budget = int(256 * rng.uniform(0.1, 0.5))
        mask = gen(budget, rng=rng)
        assert mask.shape == (16, 16) and mask.dtype == bool
        assert mask.sum() <= budget
        ratios.append(mask.sum() / budget)
        fractions.append(_neighbour_fraction(mask))
    assert np.mean(ratios) > 0.9  # the budget is (nearly) filled
    # contiguous blocks: almost every masked patch touches another; i.i.d. masks at 30% would give ~76%
    assert np.mean(fractions) > 0.97
    iid = np.random.default_rng(0).random((200, 16, 16)) < 0.3
    assert np.mean([_neighbour_fraction(m) for m in iid]) < 0.85


def test_mask_generator_is_reproducible_with_a_seeded_rng():
    gen = MaskingGenerator(8, max_num_patches=32)
    a = gen(20, rng=random.Random(7))
    b = gen(20, rng=random.Random(7))
    assert np.array_equal(a, b) and gen(0).sum() == 0


def test_collate_layout_masks_and_weights():
    samples = _samples(6)
    gen = MaskingGenerator((4, 4), max_num_patches=8)
    out = collate_data_and_cast(
        samples, (0.1, 0.5), 0.5, torch.float16, n_tokens=16, mask_generator=gen, rng=random.Random(0)
    )
    assert set(out) == {
        "collated_global_crops",
        "collated_local_crops",
        "collated_masks",
        "mask_indices_list",
        "masks_weight",
        "upperbound",
        "n_masked_patches",
    }
    g, loc = out["collated_global_crops"], out["collated_local_crops"]
    assert g.shape == (12, 3, 56, 56) and g.dtype == torch.float16
    assert loc.shape == (18, 3, 28, 28)
    # crop-major: all first global crops, then all second ones
    assert [int(x) for x in g[:, 0, 0, 0]] == [100 * s + c for c in range(2) for s in range(6)]
    assert [int(x) for x in loc[:, 0, 0, 0]] == [100 * s + 10 + c for c in range(3) for s in range(6)]
    masks = out["collated_masks"]
    assert masks.shape == (12, 16) and masks.dtype == torch.bool
    n_masked_crops = int((masks.sum(1) > 0).sum())
    assert n_masked_crops <= int(12 * 0.5) == 6
    assert torch.equal(out["mask_indices_list"], masks.flatten().nonzero().flatten())
    m = out["mask_indices_list"].shape[0]
    assert out["n_masked_patches"].tolist() == [m] and out["upperbound"] >= m
    # weight of a patch = 1 / (masked patches of its crop): the weights of each masked crop sum to 1
    per_crop = torch.zeros(12).index_add_(0, out["mask_indices_list"] // 16, out["masks_weight"])
    assert torch.allclose(per_crop[masks.any(1)], torch.ones(n_masked_crops))


def test_collate_mask_ratios_fall_in_their_strata():
    gen = MaskingGenerator((14, 14), max_num_patches=98)
    rng = random.Random(3)
    all_ratios = []
    for _ in range(20):
        out = collate_data_and_cast(_samples(8, 14, 14, 0), (0.1, 0.5), 0.5, torch.float32, 196, gen, rng=rng)
        ratios = sorted((out["collated_masks"].sum(1).float() / 196).tolist())
        masked = [r for r in ratios if r > 0]
        assert len(ratios) - len(masked) >= 8  # half of the 16 global crops are not masked
        assert all(r <= 0.5 + 1e-6 for r in masked)
        all_ratios += masked
        # upperbound = sum of the strata maxima: int(196 * p) for p in linspace(0.1, 0.5, 9)[1:]
        assert out["upperbound"] == sum(int(196 * float(p)) for p in torch.linspace(0.1, 0.5, 9)[1:])
    assert 0.2 < np.mean(all_ratios) < 0.32  # strata cover 0.1-0.5 uniformly (minus a little overlap)
    assert min(all_ratios) >= 0.05


def test_collate_matches_the_fixture_masks(dinov2_fixtures):
    ref = torch.load(dinov2_fixtures / "losses.pt", weights_only=True)["ibot"]["collate"]
    packed = pack_masks(ref["collated_masks"], upperbound=ref["upperbound"])
    assert torch.equal(packed["mask_indices_list"], ref["mask_indices_list"])
    torch.testing.assert_close(packed["masks_weight"], ref["masks_weight"])
    assert torch.equal(packed["n_masked_patches"], ref["n_masked_patches"])
    # the fixture's batch: 4 global crops of an 8x8 grid, probability 0.5, ratios 0.1-0.5
    probs = torch.linspace(0.1, 0.5, 3)
    assert ref["upperbound"] == int(64 * float(probs[1])) + int(64 * float(probs[2]))
    out = collate_data_and_cast(
        _samples(2, 8, 8, 0), (0.1, 0.5), 0.5, torch.float32, 64, MaskingGenerator(8, max_num_patches=32)
    )
    assert out["upperbound"] == ref["upperbound"]


def test_masked_multicrop_collate_is_seeded_by_stream_position():
    collate = MaskedMultiCropCollate(patch_size=14, seed=5)
    a = collate(_samples(4, start=40))
    b = collate(_samples(4, start=40))
    c = collate(_samples(4, start=44))
    assert torch.equal(a["collated_masks"], b["collated_masks"])
    assert not torch.equal(a["collated_masks"], c["collated_masks"])
    # the grid follows the crop size (high-resolution phase needs no new collate)
    assert a["collated_masks"].shape == (8, 16)
    assert collate(_samples(4, global_size=84, start=0))["collated_masks"].shape == (8, 36)


@pytest.mark.parametrize("bad", [dict(mask_ratio_tuple=(0.6, 0.2)), dict(mask_probability=1.5)])
def test_collate_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        MaskedMultiCropCollate(patch_size=14, **bad)
