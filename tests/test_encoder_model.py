"""Tiny-config tests of the backbone (timm style): shapes, gradients, freezing, caching, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import encoders
from encoders.layers import Attention, SwiGLUFFN, swiglu_hidden_features
from encoders.vision_transformer import DinoVisionTransformer


def tiny(**overrides) -> DinoVisionTransformer:
    return encoders.create_model("vit_pico_patch14", **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"num_register_tokens": 3},
        {"ffn_layer": "swiglufused"},
        {"patch_size": 16},
        {"interpolate_offset": 0.0, "interpolate_antialias": True},
        {"init_values": None},
    ],
)
def test_shapes_no_nans_and_every_parameter_gets_a_gradient(overrides):
    model = tiny(**overrides).train()
    p = model.patch_size
    x = torch.randn(2, 3, 4 * p, 6 * p)
    out = model.forward_features(x)
    r, d, n = model.num_register_tokens, model.embed_dim, 24
    assert out["x_norm_clstoken"].shape == (2, d)
    assert out["x_norm_regtokens"].shape == (2, r, d)
    assert out["x_norm_patchtokens"].shape == (2, n, d)
    assert out["x_prenorm"].shape == (2, 1 + r + n, d)
    assert out["masks"] is None
    for key in ("x_norm_clstoken", "x_norm_patchtokens", "x_prenorm"):
        assert torch.isfinite(out[key]).all()
    masks = torch.zeros(2, n, dtype=torch.bool)
    masks[:, :5] = True  # mask_token must receive a gradient too
    out = model.forward_features(x, masks=masks)
    loss = sum(v.float().pow(2).mean() for k, v in out.items() if k != "masks" and v.numel())
    loss.backward()
    missing = [name for name, prm in model.named_parameters() if prm.grad is None or not prm.grad.abs().sum() > 0]
    assert missing == []


def test_forward_returns_cls_token_and_training_dict():
    model = tiny().eval()
    x = torch.randn(3, 3, 56, 56)
    cls = model(x)
    torch.testing.assert_close(cls, model.forward_features(x)["x_norm_clstoken"])
    assert isinstance(model(x, is_training=True), dict)


def test_list_form_for_multicrop_batches():
    model = tiny().eval()
    globals_, locals_ = torch.randn(4, 3, 56, 56), torch.randn(6, 3, 28, 28)
    masks = torch.rand(4, 16) > 0.5
    outs = model.forward_features([globals_, locals_], [masks, None])
    assert [o["x_norm_patchtokens"].shape[:2] for o in outs] == [(4, 16), (6, 4)]
    torch.testing.assert_close(outs[0]["x_prenorm"], model.forward_features(globals_, masks)["x_prenorm"])
    torch.testing.assert_close(outs[1]["x_prenorm"], model.forward_features(locals_)["x_prenorm"])


def test_registers_get_no_positional_embedding():
    model = tiny(num_register_tokens=2).eval()
    with torch.no_grad():
        model.register_tokens.copy_(torch.randn_like(model.register_tokens))
        tokens = model.prepare_tokens_with_masks(torch.randn(1, 3, 56, 56))
    torch.testing.assert_close(tokens[0, 1:3], model.register_tokens[0])


def test_mask_token_replaces_patches_before_positions():
    model = tiny().eval()
    x = torch.randn(1, 3, 28, 28)
    masks = torch.tensor([[True, False, False, True]])
    with torch.no_grad():
        tokens = model.prepare_tokens_with_masks(x, masks)
        pos = model.interpolate_pos_encoding(tokens, 28, 28)
    torch.testing.assert_close(tokens[0, 1] - pos[0, 1], model.mask_token[0])
    torch.testing.assert_close(tokens[0, 4] - pos[0, 4], model.mask_token[0])


@pytest.mark.parametrize("offset,antialias", [(0.1, False), (0.0, False), (0.0, True), (0.1, True)])
def test_positional_interpolation_modes(offset, antialias):
    """Both official modes: scale factor (new + offset) / old, or the exact output size."""
    model = tiny(interpolate_offset=offset, interpolate_antialias=antialias)
    m = model.patch_embed.grid_size  # 16 for img_size 224, patch 14
    dim = model.embed_dim
    tokens = torch.zeros(1, 1 + 5 * 7, dim)
    pos = model.interpolate_pos_encoding(tokens, 5 * 14, 7 * 14)
    grid = model.pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
    if offset:
        kwargs = {"scale_factor": ((5 + offset) / m, (7 + offset) / m)}
    else:
        kwargs = {"size": (5, 7)}
    expected = (
        F.interpolate(grid, mode="bicubic", antialias=antialias, **kwargs).permute(0, 2, 3, 1).reshape(1, -1, dim)
    )
    torch.testing.assert_close(pos[:, 1:], expected)
    torch.testing.assert_close(pos[:, :1], model.pos_embed[:, :1])
    same = model.interpolate_pos_encoding(torch.zeros(1, 1 + m * m, dim), 224, 224)
    assert same is model.pos_embed  # native resolution: no interpolation


def test_input_not_multiple_of_patch_size_is_a_clear_value_error():
    model = tiny()
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        model.forward_features(torch.randn(1, 3, 50, 56))
    with pytest.raises(ValueError, match="input channels"):
        model.forward_features(torch.randn(1, 1, 56, 56))


def test_sdpa_matches_plain_attention():
    attn = Attention(64, num_heads=4).eval()
    x = torch.randn(2, 10, 64)
    ref = Attention(64, num_heads=4, use_sdpa=False).eval()
    ref.load_state_dict(attn.state_dict())
    torch.testing.assert_close(attn(x), ref(x), atol=1e-5, rtol=1e-5)


def test_swiglu_width_rule_and_forward():
    assert swiglu_hidden_features(4 * 1536) == 4096
    assert swiglu_hidden_features(4 * 64) == 176
    ffn = SwiGLUFFN(64, 256)
    x = torch.randn(3, 64)
    x1, x2 = (x @ ffn.w12.weight.T + ffn.w12.bias).chunk(2, dim=-1)
    torch.testing.assert_close(ffn(x), (F.silu(x1) * x2) @ ffn.w3.weight.T + ffn.w3.bias)


def test_unfreeze_top_layers_trains_exactly_top_blocks_and_norm():
    model = encoders.create_model("vit_pico_patch14", depth=4).train()
    model.unfreeze_top_layers(2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("blocks.2.", "blocks.3.", "norm.")) for n in trainable)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in trainable if n.startswith("blocks")} == {
        "blocks.2",
        "blocks.3",
    }
    assert model.first_trainable_block == 2
    out = model.forward_features(torch.randn(2, 3, 28, 28))
    out["x_norm_patchtokens"].sum().backward()
    for name, prm in model.named_parameters():
        if name in trainable:
            assert prm.grad is not None and prm.grad.abs().sum() > 0, name
        else:
            assert prm.grad is None, name
    model.freeze()
    assert not any(p.requires_grad for p in model.parameters())
    assert model.first_trainable_block == model.n_blocks
    with pytest.raises(ValueError, match="n must be in"):
        model.unfreeze_top_layers(5)


@pytest.mark.parametrize("k", [0, 2, 4])
def test_forward_from_cached_block_tokens_equals_full_forward(k):
    model = encoders.create_model("vit_pico_patch14", depth=4, num_register_tokens=1).eval()
    x = torch.randn(2, 3, 42, 56)
    with torch.no_grad():
        full = model.forward_features(x)
        cached = model.forward_from_block(model.tokens_before_block(x, k), k)
    for key in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm"):
        torch.testing.assert_close(cached[key], full[key])


def test_drop_path_is_active_in_training_only():
    model = tiny(drop_path_rate=0.5, drop_path_uniform=True)
    x = torch.randn(8, 3, 28, 28)
    model.eval()
    a, b = model(x), model(x)
    torch.testing.assert_close(a, b)
    model.train()
    torch.manual_seed(1)
    c = model(x)
    torch.manual_seed(2)
    d = model(x)
    assert not torch.allclose(c, d)


def test_get_intermediate_layers_errors_and_shapes():
    model = tiny().eval()
    x = torch.randn(1, 3, 28, 42)
    (out,) = model.get_intermediate_layers(x, n=1, reshape=True)
    assert out.shape == (1, model.embed_dim, 2, 3)
    with pytest.raises(ValueError, match="out of range"):
        model.get_intermediate_layers(x, n=[5])
