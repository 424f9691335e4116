"""SemanticEncoder: patch grids, gradients through cached tokens, in-place refresh, targets and collapse metrics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from techniques.rl_navigation.collapse_monitor import CollapseMonitor, effective_rank, feature_std
from techniques.rl_navigation.semantic_encoder import SemanticEncoder
from techniques.rl_navigation.target_encoder import TargetEncoder, TopBlocks


@pytest.fixture(scope="module")
def encoder() -> SemanticEncoder:
    torch.manual_seed(0)
    return SemanticEncoder.from_name("vit_pico_patch14", depth=3)


def _images(n: int = 2, size: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_patch_grids_need_patch_aligned_images(encoder):
    image = _images(1, size=70)[0]  # 5x5 patches of 14 px
    assert encoder.patch_grids(image).shape == (1, 5, 5, encoder.backbone.embed_dim)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        encoder.patch_grids(_images(1, size=50))


def test_phase2_gradients_reach_exactly_top_blocks_and_norm(encoder):
    cache = encoder.build_cache(_images(3), cache_top_layers=1)
    encoder.unfreeze_top_layers(1)
    try:
        feats = encoder.window_features(cache, np.array([0, 2, 2]), np.zeros(3, int), np.array([0, 1, 3]), [3, 0, 1])
        feats.pow(2).sum().backward()
        for name, param in encoder.backbone.named_parameters():
            trainable = name.startswith(("blocks.2.", "norm."))
            assert param.requires_grad == trainable, name
            if trainable:
                assert param.grad is not None and param.grad.abs().sum() > 0, name
            else:
                assert param.grad is None, name
        # the differentiable features equal the cache's own lookups
        expected = cache.lookup(np.array([0, 2, 2]), np.zeros(3, int), np.array([0, 1, 3]), np.array([3, 0, 1]))
        np.testing.assert_allclose(feats.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    finally:
        encoder.backbone.zero_grad(set_to_none=True)
        encoder.freeze()


def test_refresh_follows_the_encoder_in_place(encoder):
    images = _images(2, seed=3)
    cache = encoder.build_cache(images, cache_top_layers=1)
    view = cache.window_mean_numpy(1)
    before = view.copy()
    with torch.no_grad():
        encoder.backbone.blocks[2].ls2.gamma.add_(0.5)  # layer scale starts at 1e-5: change it, not a bias
    try:
        cache.refresh(encoder.backbone)
        fresh = encoder.build_cache(images, cache_top_layers=1)
        np.testing.assert_allclose(view, fresh.window_mean_numpy(1), rtol=1e-4, atol=1e-5)
        assert not np.allclose(view, before)
    finally:
        with torch.no_grad():
            encoder.backbone.blocks[2].ls2.gamma.sub_(0.5)


def test_target_encoder_modes(encoder):
    online = encoder.backbone
    target = TargetEncoder(online, n_top=1, mode="ema", momentum=0.5)
    assert isinstance(target.network, TopBlocks) and not any(p.requires_grad for p in target.network.parameters())
    tokens = online.tokens_before_block(torch.zeros(1, 3, 28, 28), 2)
    ref = online.forward_from_block(tokens, 2)["x_norm_patchtokens"]
    torch.testing.assert_close(target.network.forward_from_block(tokens, 2)["x_norm_patchtokens"], ref)
    w_online = online.blocks[2].attn.qkv.weight
    w_target = target.network.blocks[0].attn.qkv.weight
    start = w_target.detach().clone()
    with torch.no_grad():
        w_online.add_(1.0)
    try:
        assert target.update()
        torch.testing.assert_close(w_target, start + 0.5)  # 0.5 * old + 0.5 * (old + 1)
    finally:
        with torch.no_grad():
            w_online.sub_(1.0)
    frozen = TargetEncoder(online, n_top=1, mode="frozen")
    assert not frozen.update()
    assert TargetEncoder(online, n_top=1, mode="online").network is online
    with pytest.raises(ValueError, match="choose one of"):
        TargetEncoder(online, 1, mode="teacher")  # type: ignore[arg-type]


def test_collapse_metrics_closed_form(caplog):
    eye = torch.eye(8).repeat(4, 1)  # 32 samples spread evenly over 8 orthogonal directions
    assert effective_rank(eye) == pytest.approx(7.0, rel=1e-6)  # centred: 7 equal singular values
    line = (torch.rand(64, 1) + 1) * torch.randn(1, 8)  # one direction only (and one L2-normalised vector)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-4)
    assert effective_rank(torch.ones(16, 8)) == 0.0
    assert feature_std(torch.ones(16, 8)) == pytest.approx(0.0, abs=1e-7)
    assert feature_std(eye) > 0.2
    monitor = CollapseMonitor(fraction=0.5)
    monitor.set_reference(monitor.measure(eye))
    with caplog.at_level(logging.WARNING):
        assert monitor.check(monitor.measure(eye)) == []
        assert set(monitor.check(monitor.measure(line))) == {"feature_std", "effective_rank"}
    assert "possible representation collapse" in caplog.text
