"""``python -m experiments.pretrain`` end to end on a folder of generated PNGs: outputs, exact resume,
graceful SIGTERM, high-resolution phase, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import signal

import cv2
import numpy as np
import pytest
import torch

from encoders import create_model
from encoders.train.data import MultiCropDataPipeline
from encoders.train.ssl_meta_arch import SSLMetaArch
from encoders.train.trainer import Trainer
from encoders.utils.config import load_config
from experiments import pretrain

PICO = ["--preset", "pico", "--no-train.progress"]


pytestmark = pytest.mark.usefixtures("restore_logging")


def _run(argv: list[str]) -> int:
    cfg = pretrain.parse_args(argv)
    return pretrain.run(cfg, pretrain.dist_utils.DistributedContext())


def test_cli_smoke_writes_config_checkpoint_backbone_and_tensorboard(image_dir, tmp_path):
    out = tmp_path / "run"
    assert pretrain.main([*PICO, "--data", str(image_dir), "--output", str(out), "--train.max-iterations", "4"]) == 0
    cfg = load_config(pretrain.PretrainConfig, out)
    assert cfg.student.arch == "vit_pico_patch14" and cfg.train.max_iterations == 4
    resolved = json.loads((out / "resolved.json").read_text())
    assert resolved["lr"] == pytest.approx(0.004 * (4 / 1024) ** 0.5) and resolved["total_iterations"] == 10
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["config"]["data"] == str(image_dir)
    assert {"student.backbone.cls_token", "teacher.dino_head.last_layer.weight_g", "dino_loss.center"} <= set(
        ckpt["model"]
    )
    backbone = create_model("vit_pico_patch14", pretrained=out / "teacher_backbone.pth")
    teacher = {k[len("teacher.backbone.") :]: v for k, v in ckpt["model"].items() if k.startswith("teacher.backbone.")}
    assert all(torch.equal(v, teacher[k]) for k, v in backbone.state_dict().items())

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "losses/total_loss",
        "losses/dino_local_crops_loss",
        "losses/dino_global_crops_loss",
        "losses/ibot_loss",
        "losses/koleo_loss",
        "schedules/lr",
        "schedules/wd",
        "schedules/momentum",
        "schedules/teacher_temp",
        "monitor/grad_norm",
        "monitor/student_cls_std",
        "monitor/teacher_entropy",
        "charts/images_per_s",
    }
    assert expected <= tags
    assert [e.step for e in events.Scalars("losses/total_loss")] == [1, 2, 3, 4]


def test_resume_continues_exactly(image_dir, tmp_path):
    """2k iterations in one go == k iterations, then --resume for k more (same weights, optimizer, centers),
    with DataLoader workers, drop path (RNG) and a crop-size switch (high-resolution phase) on the way."""
    common = [
        *PICO,
        "--data",
        str(image_dir),
        "--student.drop-path-rate",
        "0.2",
        "--train.num-workers",
        "2",
        "--crops.high-res-iterations",
        "6",  # of 10: the switch to 84px global crops happens at iteration 4
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run([*common, "--output", str(a), "--train.max-iterations", "6"]) == 0
    assert _run([*common, "--output", str(b), "--train.max-iterations", "3"]) == 0
    assert torch.load(b / "checkpoint.pth", weights_only=True)["iteration"] == 3
    assert _run([*common, "--output", str(b), "--train.max-iterations", "6", "--resume"]) == 0
    ca = torch.load(a / "checkpoint.pth", weights_only=True)
    cb = torch.load(b / "checkpoint.pth", weights_only=True)
    assert ca["iteration"] == cb["iteration"] == 6
    assert ca["model"].keys() == cb["model"].keys()
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    for pid, state in ca["optimizer"]["state"].items():
        for k, v in state.items():
            assert torch.equal(v, cb["optimizer"]["state"][pid][k]), (pid, k)
    # and the run did change the weights
    fresh = SSLMetaArch(pretrain.parse_args([*common, "--output", str(a)]))
    assert not torch.equal(fresh.student.backbone.pos_embed, ca["model"]["student.backbone.pos_embed"])


def test_sigterm_saves_a_checkpoint_and_resume_finishes(image_dir, tmp_path):
    out = tmp_path / "run"
    cfg = pretrain.parse_args([*PICO, "--data", str(image_dir), "--output", str(out)])
    model = SSLMetaArch(cfg)
    data = MultiCropDataPipeline.from_config(cfg, 14, cfg.ibot.mask_ratio_min_max, cfg.ibot.mask_sample_probability)

    def kill_at_2(trainer, iteration, losses):
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    result = Trainer(cfg, model, data, callbacks=[kill_at_2]).fit()
    assert result.interrupted and result.end_iteration == 2
    assert torch.load(out / "checkpoint.pth", weights_only=True)["iteration"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    argv = [*PICO, "--data", str(image_dir), "--output", str(out), "--resume", "--train.max-iterations", "4"]
    assert _run(argv) == 0
    assert torch.load(out / "checkpoint.pth", weights_only=True)["iteration"] == 4


def test_bad_inputs_raise_clear_errors(image_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        _run([*PICO, "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "r1")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        _run([*PICO, "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "r2")])
    with pytest.raises(ValueError, match="--data DIR"):
        _run([*PICO, "--output", str(tmp_path / "r3")])
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        _run([*PICO, "--data", str(image_dir), "--output", str(tmp_path / "r4"), "--crops.local-crops-size", "30"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _run([*PICO, "--data", str(image_dir), "--output", str(tmp_path / "r5"), "--resume"])


def test_existing_run_needs_resume(image_dir, tmp_path):
    out = tmp_path / "run"
    argv = [*PICO, "--data", str(image_dir), "--output", str(out), "--train.max-iterations", "1"]
    assert _run(argv) == 0
    with pytest.raises(ValueError, match="--resume"):
        _run(argv)


def test_presets_parse_and_official_values():
    cfg = pretrain.parse_args(["--preset", "vitl14"])
    assert cfg.student.arch == "dinov2_vitl14" and cfg.optim.base_lr == 2e-4 and cfg.optim.epochs == 500
    assert cfg.train.centering == "sinkhorn_knopp" and cfg.ibot.separate_head and cfg.crops.local_crops_size == 98
    cfg = pretrain.parse_args(["--preset", "vits14", "--optim.base-lr", "0.001", "--crops.global-crops-size", "112"])
    assert (cfg.optim.base_lr, cfg.optim.epochs, cfg.optim.warmup_epochs, cfg.crops.global_crops_size) == (
        0.001,
        100,
        10,
        112,
    )
    tiny = pretrain.parse_args(["--preset", "tiny"])
    assert tiny.crops.global_crops_size % 14 == 0 and tiny.crops.local_crops_size % 14 == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_pretraining_lowers_the_loss_without_collapse(tmp_path):
    """A real (short) tiny-preset run on 200 generated shape images: the loss goes down, features stay spread."""
    root = tmp_path / "shapes"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(200):
        h, w = (int(v) for v in rng.integers(128, 224, size=2))
        img = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(10, 50))
            if rng.random() < 0.5:
                cv2.circle(img, (x, y), s, color, -1)
            else:
                cv2.rectangle(img, (x, y), (x + s, y + s), color, -1)
        cv2.imwrite(str(root / f"{i:03d}.png"), img)
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--data", str(root), "--output", str(out), "--no-train.progress"]
    argv += ["--optim.epochs", "4", "--train.epoch-length", "25", "--optim.warmup-epochs", "1"]
    assert _run(argv) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    loss = [e.value for e in events.Scalars("losses/total_loss")]
    std = [e.value for e in events.Scalars("monitor/student_cls_std")]
    assert np.mean(loss[-4:]) < np.mean(loss[:2]) - 0.3
    assert min(std[-4:]) > 0.3


@pytest.mark.slow
def test_compiled_blocks_give_the_eager_losses():
    from tests.test_ssl_meta_arch import make_batch, pico_cfg

    batch = make_batch(pico_cfg())
    results = []
    for compile_flag in (False, True):
        torch.manual_seed(0)
        model = SSLMetaArch(pico_cfg(**{"train.compile": compile_flag})).train()
        results.append(model.forward_backward(batch, teacher_temp=0.04))
    for k, v in results[0].items():
        torch.testing.assert_close(results[1][k], v, atol=1e-4, rtol=1e-4, msg=k)
