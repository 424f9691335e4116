"""docs/flags.md is generated from the configs: it must list every flag as the code has it now."""

from __future__ import annotations

from experiments import cli_reference
from tests.conftest import REPO_ROOT


def test_the_flag_reference_is_current():
    committed = (REPO_ROOT / "docs" / "flags.md").read_text()
    assert committed == cli_reference.render(), "regenerate it: python -m experiments.cli_reference > docs/flags.md"
    for flag in ("--patch-radius", "--ppo.n-steps", "--curiosity.target-mode {ema,frozen,online}", "--train.seed"):
        assert f"| `{flag}` |" in committed
