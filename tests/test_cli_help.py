"""Every command-line entry point prints its --help (argparse formats help strings; a stray '%' breaks it)."""

from __future__ import annotations

import importlib

import pytest

CLIS = ["encode", "pretrain", "distill", "eval_encoder", "curate", "two_phase", "evaluate"]


@pytest.mark.parametrize("name", CLIS)
def test_help_exits_cleanly(name, capsys):
    module = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
