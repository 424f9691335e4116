"""SceneFeatures: window means vs brute force, cache vs direct encoding, in-place refresh, the differentiable path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders import create_model
from encoders.preprocessing import images_to_tensor
from envs.features import SceneFeatures, window_mean
from envs.goals import box_distance_map, build_object_goals, cell_box, object_mask, patch_weights
from envs.scenes import SceneGenerator, colour_distance


def _brute_window_mean(grid: np.ndarray, r: int) -> np.ndarray:
    h, w, _ = grid.shape
    out = np.empty_like(grid, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = grid[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_window_mean_equals_brute_force(radius):
    grid = torch.randn(2, 3, 5, 7, 6) * 10 + 3  # (S, V, h, w, D), non-square, offset values
    fast = window_mean(grid, radius).numpy()
    for s in range(2):
        for v in range(3):
            np.testing.assert_allclose(fast[s, v], _brute_window_mean(grid[s, v].numpy(), radius), atol=1e-5)


def _images(n: int = 3, variants: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, variants, 56, 70, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pico():
    torch.manual_seed(0)
    return create_model("vit_pico_patch14").eval()


def test_from_encoder_matches_direct_encoding(pico):
    images = _images()
    cache = SceneFeatures.from_encoder(pico, images, batch_size=4)
    assert cache.grids.shape == (3, 2, 4, 5, 64) and cache.grids.dtype == torch.float32
    with torch.no_grad():
        direct = pico.forward_features(images_to_tensor(images.reshape(-1, 56, 70, 3)))["x_norm_patchtokens"]
    torch.testing.assert_close(cache.grids.reshape(6, 20, 64), direct, atol=1e-5, rtol=1e-5)
    cached = SceneFeatures.from_encoder(pico, images, batch_size=5, cache_block=1)
    torch.testing.assert_close(cached.grids, cache.grids, atol=1e-5, rtol=1e-5)
    assert cached.boundary_tokens.shape == (3, 2, 1 + 20, 64)
    half = SceneFeatures.from_encoder(pico, images, storage_dtype="float16")
    assert half.grids.dtype == torch.float16
    torch.testing.assert_close(half.grids.float(), cache.grids, atol=2e-2, rtol=1e-2)
    assert half.lookup(np.array([1]), np.array([0]), np.array([2]), np.array([3])).dtype == np.float32


def test_refresh_equals_full_reencode_and_updates_views_in_place(pico):
    images = _images()
    model = create_model("vit_pico_patch14").eval()
    model.load_state_dict(pico.state_dict())
    model.unfreeze_top_layers(1)
    cache = SceneFeatures.from_encoder(model, images, cache_block=1)
    grid_view, mean_view = cache.grids_numpy(), cache.window_mean_numpy(1)
    before = mean_view.copy()
    with torch.no_grad():
        for p in model.blocks[1].parameters():
            p.add_(torch.randn_like(p) * 0.5)
        model.norm.weight.mul_(1.5)
    cache.refresh(model, batch_size=4)
    fresh = SceneFeatures.from_encoder(model, images)
    torch.testing.assert_close(cache.grids, fresh.grids, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(grid_view, fresh.grids.numpy(), atol=1e-5)  # the old view shows the new values
    np.testing.assert_allclose(mean_view, fresh.window_mean_numpy(1), atol=1e-5)
    assert np.abs(mean_view - before).max() > 1e-2 and cache.version == 1


def test_refresh_without_tokens_reencodes_images(pico):
    images = _images(2, 1)
    model = create_model("vit_pico_patch14").eval()
    model.load_state_dict(pico.state_dict())
    cache = SceneFeatures.from_encoder(model, images)
    with torch.no_grad():
        model.patch_embed.proj.weight.mul_(-1.0)
    cache.refresh(model)
    torch.testing.assert_close(cache.grids, SceneFeatures.from_encoder(model, images).grids, atol=1e-5, rtol=1e-5)


def test_differentiable_path_matches_lookup_and_reaches_only_top_blocks(pico):
    images = _images()
    model = create_model("vit_pico_patch14")
    model.load_state_dict(pico.state_dict())
    model.unfreeze_top_layers(1)
    cache = SceneFeatures.from_encoder(model, images, cache_block=1)
    s, v = np.array([0, 2, 2, 1]), np.array([1, 0, 0, 1])
    rows, cols = np.array([0, 3, 1, 2]), np.array([4, 0, 2, 2])
    grids = cache.grids_from_tokens(model, s, v)  # (B, h, w, D), with autograd
    feats = window_mean(grids, 1)[np.arange(len(s)), rows, cols]
    np.testing.assert_allclose(feats.detach().numpy(), cache.lookup(s, v, rows, cols, radius=1), atol=1e-5)
    feats.pow(2).sum().backward()
    trainable = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected = {n for n, p in model.named_parameters() if n.startswith(("blocks.1.", "norm."))}
    assert trainable == expected
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("blocks.0.", "patch_embed")))


def test_bad_inputs_raise_value_errors(pico):
    with pytest.raises(ValueError, match="multiple of the encoder's patch size"):
        SceneFeatures.from_encoder(pico, np.zeros((1, 50, 56, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        SceneFeatures.from_encoder(pico, np.zeros((1, 56, 56, 3), np.float32))
    with pytest.raises(ValueError, match="float32' or 'float16"):
        SceneFeatures.from_encoder(pico, np.zeros((1, 56, 56, 3), np.uint8), storage_dtype="int8")
    cache = SceneFeatures.from_encoder(pico, np.zeros((1, 56, 56, 3), np.uint8), cache_block=1)
    trainable = create_model("vit_pico_patch14")  # every block trainable: cached tokens could be stale
    with pytest.raises(ValueError, match="freeze the lower blocks"):
        cache.refresh(trainable)
    with pytest.raises(ValueError, match="no boundary tokens"):
        SceneFeatures.from_encoder(pico, np.zeros((1, 56, 56, 3), np.uint8)).grids_from_tokens(pico, [0], [0])


def test_object_goals_distinct_colours_distance_maps_and_refresh(pico):
    gen = SceneGenerator(image_size=112, n_objects=(2, 4), object_size=(16, 28))
    scenes = gen.generate_many(range(3))
    goals = build_object_goals(scenes, 14, (8, 8), n_variants=2)
    assert goals.n_goals == sum(len({o.class_id for o in s.objects}) for s in scenes)
    for g in range(goals.n_goals):
        scene = scenes[goals.goal_scene[g]]
        instances = [o for o in scene.objects if o.class_id == goals.goal_class[g]]
        for k in range(2):
            assert min(colour_distance(goals.goal_colours[g, k], o.colour) for o in instances) >= 100
        boxes = [cell_box(o.bbox, 14, (8, 8)) for o in instances]
        brute = np.array(
            [[min(max(r0 - i, 0, i - r1) + max(c0 - j, 0, j - c1) for r0, c0, r1, c1 in boxes) for j in range(8)]
             for i in range(8)]
        )  # fmt: skip
        np.testing.assert_array_equal(goals.distance_maps[g], brute)
        np.testing.assert_allclose(goals.weights[g].sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert object_mask(goals.goal_images[0, 0]).any()
    np.testing.assert_allclose(patch_weights(np.ones((28, 28), bool), 14, "image"), 0.25)
    assert box_distance_map([(0, 0, 0, 0)], (2, 3))[1, 2] == 3

    model = create_model("vit_pico_patch14").eval()
    model.load_state_dict(pico.state_dict())
    model.unfreeze_top_layers(1)
    goals.encode(model, cache_block=1)
    view = goals.vectors.numpy()
    expected = torch.einsum("gkhwd,gkhw->gkd", goals.features.grids, torch.from_numpy(goals.weights))
    np.testing.assert_allclose(view, expected.numpy(), atol=1e-5)
    with torch.no_grad():
        model.norm.bias.add_(1.0)
    goals.refresh(model)
    np.testing.assert_allclose(view, expected.numpy() + 1.0, atol=1e-4)  # in place: the old view moved by the bias
