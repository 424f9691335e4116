"""Run infrastructure: dataclass CLI configs, progress lines, RNG capture."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pytest
import torch
import tyro

from encoders.utils.config import (
    AT_LEAST_1,
    UNIT,
    changed_fields,
    check_fields,
    config_to_dict,
    get_nested,
    load_config,
    parse_config,
    replace_nested,
    save_config,
)
from encoders.utils.progress import Progress
from encoders.utils.seed import get_rng_state, seed_everything, set_rng_state


@dataclass
class _Optim:
    lr: float = 1e-3
    """peak learning rate"""
    betas: Annotated[tuple[float, float], UNIT] = (0.9, 0.999)


@dataclass
class _Config:
    """A config used by the tests."""

    name: str = "run"
    """the run name"""
    steps: Annotated[int, AT_LEAST_1] = 10
    mode: Literal["fast", "exact"] = "fast"
    """how to run (50% of runs are fast)"""
    output: Path | None = None
    compile: bool = False
    optim: _Optim = field(default_factory=_Optim)


PRESETS = {"long": {"steps": 1000, "optim.lr": 0.5}}


def test_flags_presets_and_nested_sections():
    cfg = parse_config(
        _Config, ["--preset", "long", "--mode", "exact", "--compile", "--optim.betas", "0.1", "0.2"], PRESETS
    )
    assert cfg == _Config(steps=1000, mode="exact", compile=True, optim=_Optim(lr=0.5, betas=(0.1, 0.2)))
    cfg = parse_config(_Config, ["--preset", "long", "--steps", "3", "--output", "None"], PRESETS)
    assert cfg.steps == 3 and cfg.optim.lr == 0.5 and cfg.output is None


def test_invalid_choices_are_rejected(capsys):
    with pytest.raises(SystemExit):
        parse_config(_Config, ["--mode", "slow"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(_Config, ["--preset", "nope"], PRESETS)


def test_help_text_comes_from_field_docstrings(capsys):
    with pytest.raises(SystemExit):
        parse_config(_Config, ["--help"], PRESETS)
    out = capsys.readouterr().out
    assert "how to run (50% of runs" in out and "peak learning rate" in out and "--optim.lr" in out


def test_save_and_load_round_trip(tmp_path):
    cfg = _Config(output=tmp_path / "x", optim=_Optim(lr=2.0, betas=(0.5, 0.6)))
    save_config(cfg, tmp_path)
    assert load_config(_Config, tmp_path) == cfg
    assert config_to_dict(cfg)["output"] == str(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="run directory"):
        load_config(_Config, tmp_path / "missing")


@dataclass(frozen=True)
class _Rules:
    radius: int = 1
    """window radius in cells"""
    stop: bool = False


@dataclass
class _Composed:
    name: str = "run"
    rules: Annotated[_Rules, tyro.conf.arg(name="")] = field(default_factory=_Rules)
    optim: _Optim = field(default_factory=_Optim)


def test_an_unnamed_section_parses_and_saves_as_the_parents_own_fields(tmp_path, capsys):
    cfg = parse_config(_Composed, ["--radius", "3", "--stop", "--optim.lr", "0.5"])
    assert cfg.rules == _Rules(radius=3, stop=True) and get_nested(cfg, "radius") == 3
    assert config_to_dict(cfg) == {
        "name": "run",
        "radius": 3,
        "stop": True,
        "optim": {"lr": 0.5, "betas": [0.9, 0.999]},
    }
    save_config(cfg, tmp_path)
    assert load_config(_Composed, tmp_path) == cfg  # a flat config.json loads into the section
    assert replace_nested(cfg, {"radius": 2}).rules == _Rules(radius=2, stop=True)
    assert changed_fields(cfg, replace_nested(cfg, {"radius": 2, "optim.lr": 0.5})) == {"radius": 2}
    with pytest.raises(ValueError, match=r"unknown config field 'rules\.radius'"):
        replace_nested(cfg, {"rules.radius": 2})
    with pytest.raises(SystemExit):
        parse_config(_Composed, ["--help"])
    out = capsys.readouterr().out
    assert "--radius INT" in out and "window radius in cells" in out and "--rules." not in out


def test_flags_are_never_abbreviated(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's prefix matching would read it as --steps
        parse_config(_Config, ["--preset", "long", "--ste", "5"], PRESETS)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == "error: unrecognized argument --ste; did you mean --steps?\n"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "--steps must be >= 1, got 0"),
        ({"optim.betas": (0.5, 1.5)}, "--optim.betas must be in [0, 1], got (0.5, 1.5)"),
        ({"optim.lr": float("inf")}, "--optim.lr must be a finite number, got inf"),
        ({"mode": "slow"}, "--mode must be one of 'fast', 'exact', got 'slow'"),
        ({"compile": 1}, "--compile must be true or false, got 1"),
    ],
)
def test_ranges_and_types_live_on_the_fields(overrides, message):
    check_fields(_Config())
    with pytest.raises(ValueError) as error:
        check_fields(replace_nested(_Config(), overrides))
    assert str(error.value) == message


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    torch.save(get_rng_state(), tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_progress_logs_lines_with_rate_and_eta_when_not_a_tty(caplog):
    with caplog.at_level(logging.INFO, logger="encoders.utils.progress"):
        bar = Progress(total=4, desc="train", log_every_s=0.0)
        for _ in range(4):
            bar.update(1, loss=0.5)
        bar.close()
    assert "train: 4/4 (100%)" in caplog.text and "loss=0.5" in caplog.text and "it/s" in caplog.text
