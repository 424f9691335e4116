"""Every flag of the config-driven CLIs, generated from their dataclasses into ``docs/flags.md``:

    python -m experiments.cli_reference > docs/flags.md

A test regenerates it and compares, so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
import typing
from collections.abc import Mapping
from typing import Any

#: CLI module -> (its config class, its presets), as ``module:attribute`` names.
CLIS: dict[str, tuple[str, str | None]] = {
    "experiments.two_phase": (
        "techniques.rl_navigation.config:TwoPhaseConfig",
        "techniques.rl_navigation.config:PRESETS",
    ),
    "experiments.pretrain": ("encoders.train.config:PretrainConfig", "encoders.train.config:PRESETS"),
    "experiments.distill": ("encoders.distill.config:DistillConfig", "encoders.distill.config:PRESETS"),
    "experiments.eval_encoder": ("experiments.eval_encoder:EvalConfig", None),
    "experiments.curate": ("experiments.curate:CurateConfig", None),
    "experiments.evaluate": ("experiments.evaluate:EvaluateConfig", None),
    "experiments.release_encoder": ("experiments.release_encoder:ReleaseConfig", None),
}


def _load(name: str) -> Any:
    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "(empty)"
    return str(value)


def _table(cls: type, presets: Mapping[str, Any] | None) -> list[str]:
    from encoders.utils.config import config_fields, field_flag

    required = [f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING]
    defaults = cls(**dict.fromkeys(required))  # a positional (required) field has no default
    lines = [f"Presets: {', '.join(f'`{p}`' for p in sorted(presets))}.", ""] if presets else []
    lines += ["| flag | default | meaning |", "|---|---|---|"]
    for key, f in config_fields(cls).items():
        choices = typing.get_args(f.hint) if typing.get_origin(f.hint) is typing.Literal else ()
        flag = (key.upper() if key in required else field_flag(key)) + (
            f" {{{','.join(map(str, choices))}}}" * bool(choices)
        )
        default = "" if key in required else f"`{_value(functools.reduce(getattr, f.path, defaults))}`"
        row = [f"`{flag}`", default, f.doc + f" ({f.range})" * bool(f.range)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return lines


def render() -> str:
    """The markdown of ``docs/flags.md``."""
    lines = [
        "# Every flag",
        "",
        "Generated from the configs by `python -m experiments.cli_reference > docs/flags.md`; do not edit. The",
        "[CLI reference](cli.md) explains the commands; a numeric flag's allowed range ends its meaning. A study's",
        "`--rl.*` flags are the `two_phase` flags below (`--rl.patch-radius`, `--rl.ppo.n-epochs`).",
    ]
    for module, (config, presets) in CLIS.items():
        lines += ["", f"## `python -m {module}`", "", *_table(_load(config), _load(presets) if presets else None)]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["CLIS", "main", "render"]
