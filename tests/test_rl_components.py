"""Units of the RL stack: NavigationExtractor's goal matching, ForwardModelTrainer, IntrinsicCritic,
PixelFeatureSource, SemanticFeatureSource (float32 autograd path, the deferred backward through the top blocks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from envs.features import SceneFeatures
from techniques.rl_navigation.feature_sources import AgentStates, PixelFeatureSource, SemanticFeatureSource
from techniques.rl_navigation.forward_model import ForwardModel
from techniques.rl_navigation.forward_trainer import ForwardModelTrainer
from techniques.rl_navigation.intrinsic_critic import IntrinsicCritic
from techniques.rl_navigation.policy import NavigationExtractor
from techniques.rl_navigation.semantic_encoder import SemanticEncoder
from tests.test_env_core import make_env


def _states(*arrays) -> AgentStates:
    return AgentStates(*(np.asarray(a, dtype=np.int64) for a in arrays))


@pytest.fixture(scope="module")
def encoder() -> SemanticEncoder:
    torch.manual_seed(0)
    return SemanticEncoder.from_name("vit_pico_patch14", depth=3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 1, 56, 70, 3), dtype=np.uint8)  # 4x5 cells


# ------------------------------------------------------------------------------------------ extractor
@pytest.mark.parametrize("observation", ["mean", "window"])
def test_extractor_matches_the_goal_against_what_the_env_observes(observation):
    env = make_env(observation=observation, patch_radius=1)
    space = env.observation_space
    extractor = NavigationExtractor(space)
    assert extractor.match_keys == ("features", "goal")  # the env's keys: the match is on
    d = space["goal"].shape[0]
    plain = NavigationExtractor(space, match_keys=None)
    extra = extractor.features_dim - plain.features_dim
    assert extra == (d + 1 if observation == "mean" else 9)
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    goal = batch["goal"]
    if observation == "mean":
        batch["features"] = goal.clone()  # standing at the goal: cosine 1
        out = extractor(batch)
        assert out[0, -1].item() == pytest.approx(1.0, abs=1e-5)
    else:
        window = torch.zeros(1, 3, 3, d)
        window[0, 0, 2] = goal[0]  # the goal in the top-right cell of the window, nothing elsewhere
        batch["features"] = window
        match = extractor(batch)[0, -9:]
        expected = torch.zeros(9)
        expected[2] = 1.0
        torch.testing.assert_close(match, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="must name a float view"):
        NavigationExtractor(space, match_keys=("goal", "heading"))


@pytest.mark.parametrize("task", ["imagenav", "objectnav"])
@pytest.mark.parametrize("observation", ["mean", "window", "oracle", "pixels"])
def test_policy_input_shapes_for_every_observation(task, observation):
    """The per-cell input (cell_dim 16) of window, oracle and pixel views: K*K*(c + 2) + c values beside the heading;
    the mean view keeps the whole-vector input; every width matches what the forward pass produces."""
    c, k = 16, 5
    env = make_env(task, observation, patch_radius=2, include_heading=True)
    space = env.observation_space
    grid = env.unwrapped.core.world.features
    mean = None if observation in ("pixels", "oracle") else grid.grids.float().mean((0, 1, 2, 3)).tolist()
    extractor = NavigationExtractor(space, cell_dim=c, feature_mean=mean, window_cells=k)
    obs, _ = env.reset(seed=0)
    batch = {key: torch.as_tensor(np.stack([v, v]), dtype=torch.float32) for key, v in obs.items()}
    out = extractor(batch)
    assert out.shape == (2, extractor.features_dim)
    if observation == "mean":
        d = space["goal"].shape[0]
        assert extractor.cells is None and extractor.features_dim == 2 * d + 4 + (d + 1)
    else:
        assert extractor.features_dim == k * k * (c + 2) + c + 4
        start = 4 + k * k * (c + 1)  # after the heading (the whole-vector keys come first), cells and cosines
        inside = out[0, start : start + k * k]  # the inside mask: the agent's own cell is inside
        assert inside[k * k // 2] == 1 and set(inside.tolist()) <= {0.0, 1.0}
    trained = [p for name, p in extractor.named_parameters() if "cell" in name or "goal_projection" in name]
    assert (observation == "mean") == (not trained)
    if trained:
        out.sum().backward()  # every cell parameter is trained
        assert all(p.grad is not None for p in trained)


def test_pixel_cells_mark_black_cells_outside_the_scene():
    env = make_env("imagenav", "pixels", patch_radius=1)
    extractor = NavigationExtractor(env.observation_space, cell_dim=8, window_cells=3)
    obs, _ = env.reset(seed=0, options={"start": (0, 0), "goal": (7, 7)})  # a corner: 5 of 9 cells outside
    inside = extractor.cell_cnn.inside(torch.as_tensor(obs["pixels"])[None])
    np.testing.assert_array_equal(inside[0].numpy(), [0, 0, 0, 0, 1, 1, 0, 1, 1])


def test_feature_cells_are_centred_before_the_goal_cosine():
    space = make_env("imagenav", "window", patch_radius=1).observation_space
    d = space["goal"].shape[0]
    common = torch.randn(d)
    extractor = NavigationExtractor(space, cell_dim=4, feature_mean=common.tolist())
    window = common.expand(1, 3, 3, d).clone()
    a, b = torch.randn(d), torch.randn(d)
    window[0, 0, 0] += a  # cell 0 is the goal plus the common part, cell 1 another vector plus it
    window[0, 0, 1] += b
    batch = {"features": window, "goal": (common + a)[None], "heading": torch.zeros(1, 4)}
    batch = {k: v for k, v in batch.items() if k in space.spaces}
    cosine = extractor(batch)[0, 9 * 4 : 9 * 5]
    assert cosine[0].item() == pytest.approx(1.0, abs=1e-5)  # uncentred, every cell would score near 1
    assert abs(cosine[1].item()) < 0.5


# ------------------------------------------------------------------------------------------ forward trainer
def _semantic_source(encoder: SemanticEncoder, images: np.ndarray) -> SemanticFeatureSource:
    cache: SceneFeatures = encoder.build_cache(images, cache_top_layers=1)
    return SemanticFeatureSource(cache, radius=1)


def test_forward_trainer_learns_fixed_transitions_and_trains_only_what_it_should(encoder, images):
    source = _semantic_source(encoder, images)
    rng = np.random.default_rng(0)
    n = 64
    s = _states(rng.integers(2, size=n), np.zeros(n), rng.integers(4, size=n), rng.integers(5, size=n), np.zeros(n))
    nxt = _states(s.scene, s.variant, (s.row + 1) % 4, s.col, s.heading)
    actions = np.ones(n, dtype=np.int64)
    model = ForwardModel(source.dim, 4, hidden_dim=32)
    learner = ForwardModelTrainer(model, source, lr=1e-2, epochs=20, batch_size=16)
    before = learner.errors(s, actions, nxt)
    assert before.shape == (n,) and before.dtype == np.float64
    stats = learner.update(s, actions, nxt, np.random.default_rng(0))
    assert stats["steps"] == 20 * 4 and stats["forward_loss"] < stats["forward_loss_first"]
    assert learner.errors(s, actions, nxt).mean() < 0.5 * before.mean()
    # phase 2: the encoder's optimiser steps exactly its unfrozen parameters, through the forward loss
    encoder.freeze().unfreeze_top_layers(1)
    try:
        frozen = {k: v.clone() for k, v in encoder.backbone.state_dict().items()}
        learner.enable_encoder_training(encoder.trainable_parameters(), lr=1e-2)
        source.start_fine_tuning(encoder)
        learner.epochs = 1
        learner.update(s, actions, nxt, np.random.default_rng(0))
        changed = {k for k, v in encoder.backbone.state_dict().items() if not torch.equal(v, frozen[k])}
        assert changed and all(k.startswith(("blocks.2.", "norm.")) for k in changed)
    finally:
        encoder.backbone.load_state_dict(frozen)
        encoder.freeze()
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        ForwardModelTrainer(model, source, epochs=-1)


class _Dtypes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.seen.add(t.dtype)
        return out


def test_phase2_features_stay_float32_and_match_the_cache(encoder, images):
    source = _semantic_source(encoder, images)
    encoder.unfreeze_top_layers(1)
    try:
        source.start_fine_tuning(encoder)
        s = _states([0, 1, 1], [0, 0, 0], [0, 2, 3], [0, 2, 4], [0, 0, 0])
        with _Dtypes() as mode:
            deferred = source.deferred_features(s)
            z = deferred(np.arange(3))
            z.sum().backward()
            deferred.backward()
        assert z.requires_grad and torch.float64 not in mode.seen
        torch.testing.assert_close(z.detach(), source.features(s), rtol=1e-5, atol=1e-5)
        # the recomputed top blocks give the same features as the cache holds
        direct = encoder.window_features(source.cache, s.scene, s.variant, s.row, s.col, 1)
        torch.testing.assert_close(direct.detach(), z.detach(), rtol=1e-5, atol=1e-5)
    finally:
        encoder.backbone.zero_grad(set_to_none=True)
        encoder.freeze()


def test_deferred_backward_equals_the_gradient_of_the_mean_minibatch_loss(encoder, images):
    """Two minibatch losses accumulated in the leaf, one backward through the top blocks (in chunks of one grid):
    the encoder's gradient equals autograd of their mean through the recomputed features."""
    source = _semantic_source(encoder, images)
    encoder.unfreeze_top_layers(1)
    rng = np.random.default_rng(1)
    s = _states(
        rng.integers(2, size=12), np.zeros(12), rng.integers(4, size=12), rng.integers(5, size=12), np.zeros(12)
    )
    weights = torch.randn(12, source.dim, generator=torch.Generator().manual_seed(0))
    batches = [np.arange(0, 7), np.arange(5, 12)]  # overlapping minibatches, as over several epochs

    def loss(z: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        return (z * weights[idx]).square().mean()

    params = list(encoder.trainable_parameters())
    try:
        source.start_fine_tuning(encoder, batch_size=1)
        deferred = source.deferred_features(s)
        for idx in batches:
            loss(deferred(idx), idx).backward()
        deferred.backward(scale=1.0 / len(batches))
        got = [p.grad.clone() for p in params]
        encoder.backbone.zero_grad(set_to_none=True)
        z = encoder.window_features(source.cache, s.scene, s.variant, s.row, s.col, 1)
        expected = torch.autograd.grad(sum(loss(z[idx], idx) for idx in batches) / len(batches), params)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)
        assert any(g.abs().sum() > 0 for g in got)
        with pytest.raises(ValueError, match="start_fine_tuning"):
            _semantic_source(encoder, images).deferred_features(s)
    finally:
        encoder.backbone.zero_grad(set_to_none=True)
        encoder.freeze()


def test_phase2_update_steps_the_encoder_once_and_the_forward_model_every_minibatch(encoder, images):
    source = _semantic_source(encoder, images)
    rng = np.random.default_rng(0)
    n = 64
    s = _states(rng.integers(2, size=n), np.zeros(n), rng.integers(4, size=n), rng.integers(5, size=n), np.zeros(n))
    nxt = _states(s.scene, s.variant, (s.row + 1) % 4, s.col, s.heading)
    learner = ForwardModelTrainer(ForwardModel(source.dim, 4, hidden_dim=32), source, epochs=2, batch_size=16)
    encoder.unfreeze_top_layers(1)
    try:
        learner.enable_encoder_training(encoder.trainable_parameters(), lr=1e-2)
        source.start_fine_tuning(encoder)  # the online target: the cache itself
        stats = learner.update(s, np.ones(n, dtype=np.int64), nxt, np.random.default_rng(0))
        assert stats["steps"] == 8
        forward_steps = {int(v["step"]) for v in learner.optimizer.state_dict()["state"].values()}
        encoder_steps = {int(v["step"]) for v in learner.encoder_optimizer.state_dict()["state"].values()}
        assert forward_steps == {8} and encoder_steps == {1}
    finally:
        encoder.freeze()


# ------------------------------------------------------------------------------------------ critic, pixels
def test_intrinsic_critic_fits_and_reinitialises_deterministically():
    torch.manual_seed(0)
    critic = IntrinsicCritic(8, hidden_dim=16)
    features = torch.randn(256, 8)
    returns = features[:, 0] * 0.5 + 1.0  # a function of the (layer-normed) features
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    first = critic.fit(opt, features, returns, epochs=1, batch_size=64, generator=torch.Generator().manual_seed(0))
    last = critic.fit(opt, features, returns, epochs=30, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert critic(features).shape == (256,) and last < 0.2 * first
    critic.reset_parameters(3)
    a = [p.detach().clone() for p in critic.parameters()]
    critic.reset_parameters(3)
    assert all(torch.equal(x, y.detach()) for x, y in zip(a, critic.parameters()))
    critic.reset_parameters(4)
    assert not all(torch.equal(x, y.detach()) for x, y in zip(a, critic.parameters()))


def test_pixel_source_pools_crops_and_is_black_outside():
    images = np.zeros((1, 1, 28, 28, 3), dtype=np.uint8)
    images[0, 0, :14, :14] = 255  # the top-left cell is white
    source = PixelFeatureSource(images, patch_size=14, radius=0, size=2)
    assert source.dim == 12 and not source.trainable
    out = source.features(_states([0, 0], [0, 0], [0, 1], [0, 1], [0, 0]))
    torch.testing.assert_close(out[0], torch.ones(12))  # white cell
    torch.testing.assert_close(out[1], torch.zeros(12))  # black cell
    wide = PixelFeatureSource(images, patch_size=14, radius=1, size=3)  # 3x3 cells around (0, 0): 1 of 9 white
    crop = wide.features(_states([0], [0], [0], [0], [0]))[0].reshape(3, 3, 3)  # (C, y, x)
    torch.testing.assert_close(crop[:, 1, 1], torch.ones(3))  # the centre (its own cell)
    torch.testing.assert_close(crop[:, 0, 0], torch.zeros(3))  # outside the image: black
    torch.testing.assert_close(
        wide.targets(_states([0], [0], [0], [0], [0])), wide.features(_states([0], [0], [0], [0], [0]))
    )
    with pytest.raises(ValueError, match="pixel size"):
        PixelFeatureSource(images, 14, 0, size=0)
