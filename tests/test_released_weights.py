"""Released encoder weights: loaded by name, checked against their SHA-256, refused for another architecture, and
(for every release in the repository) the same features as the training run's file they were exported from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import encoders
from encoders import released
from encoders.checkpoint import sidecar_path
from encoders.preprocessing import images_to_tensor
from encoders.released import RELEASED, ReleasedWeights, released_path, sha256_of
from encoders.utils.io import CheckpointError

REFERENCE_DIR = Path(__file__).parent / "fixtures" / "released"


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """A release of random vit_pico weights in a temporary weights folder."""
    torch.manual_seed(0)
    model = encoders.create_model("vit_pico_patch14")
    encoders.save_backbone(model, tmp_path / "pico.pth", name="vit_pico_patch14", overrides={})
    release = ReleasedWeights("test-pico", "vit_pico_patch14", "pico.pth", sha256_of(tmp_path / "pico.pth"),
                              "test weights", "python -c ...", "tests")  # fmt: skip
    monkeypatch.setattr(released, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(RELEASED, release.name, release)
    return model, release


def test_release_loads_by_name_everywhere(fake_release):
    from encoders.eval.features import load_frozen_encoder
    from techniques.rl_navigation.semantic_encoder import SemanticEncoder

    model, _ = fake_release
    x = torch.randn(2, 3, 56, 56)
    expected = model.eval().forward_features(x)["x_norm_patchtokens"]
    for loaded in (
        encoders.create_model("vit_pico_patch14", pretrained="test-pico"),
        load_frozen_encoder("vit_pico_patch14", "test-pico"),
        SemanticEncoder.from_name("vit_pico_patch14", "test-pico").backbone,
    ):
        torch.testing.assert_close(loaded.eval().forward_features(x)["x_norm_patchtokens"], expected)


def test_release_refuses_altered_missing_and_mismatched_files(fake_release):
    _, release = fake_release
    with pytest.raises(CheckpointError, match="for vit_pico_patch14, not vit_mini_patch14; pass --encoder"):
        encoders.create_model("vit_mini_patch14", pretrained="test-pico")
    with pytest.raises(CheckpointError, match="no released encoder weights named 'nope'"):
        released_path("nope")
    release.path.write_bytes(release.path.read_bytes() + b"x")
    with pytest.raises(CheckpointError, match="restore it from git"):
        encoders.create_model("vit_pico_patch14", pretrained="test-pico")
    release.path.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        released_path("test-pico")


def test_two_phase_accepts_a_release_for_its_architecture_only(fake_release):
    from techniques.rl_navigation.config import TwoPhaseConfig, check_config

    check_config(TwoPhaseConfig(encoder="vit_pico_patch14", encoder_weights="test-pico"))
    with pytest.raises(ValueError, match="--encoder-weights test-pico are vit_pico_patch14 weights; pass --encoder"):
        check_config(TwoPhaseConfig(encoder="vit_mini_patch14", encoder_weights="test-pico"))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_every_release_matches_its_hash_and_its_source_features(name):
    release = RELEASED[name]
    assert sha256_of(release.path) == release.sha256
    reference = torch.load(REFERENCE_DIR / f"{name}.pt")  # written from the fp32 training output at release time
    model = encoders.create_model(release.arch, pretrained=name).eval()
    with torch.no_grad():
        out = model.forward_features(images_to_tensor(reference["pixels"].numpy()))
    torch.testing.assert_close(out["x_norm_clstoken"], reference["cls"], atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(out["x_norm_patchtokens"], reference["patch"], atol=2e-2, rtol=2e-2)
    sidecar = json.loads(sidecar_path(release.path).read_text())
    assert sidecar["name"] == release.arch


def test_release_registry_rejects_reused_names():
    with pytest.raises(ValueError, match="taken"):
        released.register_release(ReleasedWeights("official", "vit_mini_patch14", "x.pth", "0", "", "", ""))


def test_release_cli_writes_weights_manifest_and_reference(tmp_path, monkeypatch):
    from experiments import release_encoder

    monkeypatch.setattr(released, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(release_encoder, "REFERENCE_DIR", tmp_path / "reference")
    torch.manual_seed(1)
    encoders.save_backbone(encoders.create_model("vit_pico_patch14"), tmp_path / "run.pth", name="vit_pico_patch14",
                           overrides={})  # fmt: skip
    argv = ["--weights", str(tmp_path / "run.pth"), "--name", "pico-test", "--command", "made by a test"]
    assert release_encoder.main(argv) == 0
    [entry] = released.read_manifest(tmp_path / "weights")
    assert entry.arch == "vit_pico_patch14" and entry.command == "made by a test"
    assert sha256_of(entry.path) == entry.sha256 and entry.path.stat().st_size < (tmp_path / "run.pth").stat().st_size
    monkeypatch.setitem(RELEASED, entry.name, entry)
    reference = torch.load(tmp_path / "reference" / "pico-test.pt")
    model = encoders.create_model("vit_pico_patch14", pretrained="pico-test").eval()
    with torch.no_grad():
        cls = model.forward_features(images_to_tensor(reference["pixels"].numpy()))["x_norm_clstoken"]
    torch.testing.assert_close(cls, reference["cls"], atol=2e-2, rtol=2e-2)
    assert release_encoder.main(argv) == 0  # a re-release replaces its entry
    assert len(released.read_manifest(tmp_path / "weights")) == 1
    assert release_encoder.main(["--name", "x"]) == 2


def test_studies_default_to_the_release_for_its_architecture(tmp_path):
    from experiments.studies.config import DEFAULT_RELEASE, study_encoder_weights, study_rl

    assert DEFAULT_RELEASE in RELEASED and RELEASED[DEFAULT_RELEASE].arch == "vit_mini_patch14"
    assert study_encoder_weights(study_rl(encoder="vit_mini_patch14"), "cpu", tmp_path) == DEFAULT_RELEASE
    assert study_encoder_weights(study_rl(encoder="vit_mini_patch14"), "smoke", tmp_path) is None  # random init
    explicit = study_rl(encoder="vit_mini_patch14", encoder_weights="my.pth")
    assert study_encoder_weights(explicit, "cpu", tmp_path) == "my.pth"
