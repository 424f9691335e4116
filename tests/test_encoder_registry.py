"""Registry, official URLs, strict loading and checkpoint errors."""

from __future__ import annotations

import urllib.error

import pytest
import torch

import encoders
from encoders import CheckpointError
from encoders.checkpoint import extract_backbone_state_dict, infer_backbone_config
from encoders.registry import get_model_spec
from encoders.utils.io import atomic_save


def test_registry_lists_official_and_small_presets():
    names = encoders.list_models()
    for arch in ("vits14", "vitb14", "vitl14", "vitg14"):
        assert f"dinov2_{arch}" in names and f"dinov2_{arch}_reg" in names
        assert get_model_spec(arch).name == f"dinov2_{arch}"  # short alias
    for preset in ("vit_tiny_patch14", "vit_tiny_patch16", "vit_pico_patch14", "vit_mini_patch14"):
        assert preset in names
    with torch.device("meta"):
        g = encoders.create_model("dinov2_vitg14_reg")
    assert (g.embed_dim, g.n_blocks, g.num_heads, g.num_register_tokens) == (1536, 40, 24, 4)
    assert g.blocks[0].mlp.w3.in_features == (int(4 * 1536 * 2 / 3) + 7) // 8 * 8
    assert g.interpolate_antialias and g.interpolate_offset == 0.0


def test_unknown_encoder_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown encoder 'dinov2_vits16'.*dinov2_vits14"):
        encoders.create_model("dinov2_vits16")


def test_overrides_change_constructor_arguments_and_reject_unknown_ones():
    model = encoders.create_model("vit_tiny_patch14", depth=3, embed_dim=96, num_heads=3, num_register_tokens=2)
    assert (model.n_blocks, model.embed_dim, model.num_register_tokens) == (3, 96, 2)
    with pytest.raises(ValueError, match="unknown argument"):
        encoders.create_model("vit_tiny_patch14", depht=3)


def test_official_urls():
    assert encoders.official_weights_url("dinov2_vits14") == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
    )
    assert encoders.official_weights_url("vitg14_reg") == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/dinov2_vitg14_reg4_pretrain.pth"
    )
    with pytest.raises(ValueError, match="no official weights"):
        encoders.official_weights_url("vit_tiny_patch14")


def test_pretrained_true_without_network_says_to_pass_a_local_file(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match="pass it as a local file"):
        encoders.create_model("dinov2_vits14", pretrained=True, depth=1)


def test_round_trip_through_official_format(tmp_path):
    model = encoders.create_model("vit_pico_patch14", num_register_tokens=1)
    path = encoders.save_backbone(
        model, tmp_path / "backbone.pth", name="vit_pico_patch14", overrides={"num_register_tokens": 1}
    )
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(model.state_dict())  # a flat official-style state dict
    loaded = encoders.create_model("vit_pico_patch14", pretrained=path, num_register_tokens=1).eval()
    x = torch.randn(1, 3, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    rebuilt = encoders.create_model_from_checkpoint(path).eval()
    torch.testing.assert_close(rebuilt(x), model(x))


def test_mismatch_lists_keys_and_names_the_model_the_file_fits(tmp_path):
    source = encoders.create_model("vit_pico_patch14")
    path = atomic_save(source.state_dict(), tmp_path / "pico.pth")
    with pytest.raises(CheckpointError) as err:
        encoders.create_model("vit_pico_patch14", pretrained=path, num_register_tokens=4)
    message = str(err.value)
    assert "unexpected keys" not in message and "missing keys (1): register_tokens" in message
    assert "vit_pico_patch14" in message  # the model it fits
    with pytest.raises(CheckpointError, match="shape mismatches"):
        encoders.create_model("vit_pico_patch16", pretrained=path)


def test_missing_and_corrupt_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        encoders.create_model("vit_pico_patch14", pretrained=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        encoders.create_model("vit_pico_patch14", pretrained=bad)
    good = atomic_save(encoders.create_model("vit_pico_patch14").state_dict(), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        encoders.create_model("vit_pico_patch14", pretrained=truncated)


def test_backbone_is_found_inside_training_checkpoints():
    sd = encoders.create_model("vit_pico_patch14").state_dict()
    wrapped = {
        "teacher": {**{f"backbone.{k}": v for k, v in sd.items()}, "dino_head.last_layer.weight": torch.zeros(1)},
        "iteration": 5,
    }
    extracted = extract_backbone_state_dict(wrapped)
    assert set(extracted) == set(sd)
    ddp = extract_backbone_state_dict({f"module._orig_mod.{k}": v for k, v in sd.items()})
    assert set(ddp) == set(sd)


def test_infer_config_from_state_dict():
    model = encoders.create_model("vit_pico_patch16", num_register_tokens=2, ffn_layer="swiglufused")
    cfg = infer_backbone_config(model.state_dict())
    assert cfg["embed_dim"] == 64 and cfg["depth"] == 2 and cfg["patch_size"] == 16 and cfg["img_size"] == 224
    assert cfg["num_register_tokens"] == 2 and cfg["ffn_layer"] == "swiglufused" and cfg["init_values"] == 1.0


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    atomic_save({"a": torch.ones(2)}, path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"a": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]
