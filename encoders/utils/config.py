"""Typed dataclass configs: their command lines (tyro, the parser CleanRL uses), ranges and ``config.json``.

A field's help text is the string literal on the line after it; its range, if it is a number, is in its type::

    @dataclass
    class TrainConfig:
        lr: Annotated[float, NON_NEGATIVE] = 1e-3
        \"\"\"peak learning rate\"\"\"
        crops: tuple[int, int] = (224, 96)
        \"\"\"global and local crop sizes in pixels\"\"\"

``parse_config(TrainConfig, presets={"tiny": {"lr": 1e-2}})`` accepts ``--preset tiny --lr 3e-3 --crops 112 56``:
:func:`tyro.cli` with the preset applied to the defaults first. A nested section gives ``--section.field``; a
section annotated ``tyro.conf.arg(name="")`` gives its fields as the parent's own flags (``--patch-radius``).

A field's *key* is its flag without the dashes (``lr``, ``optim.lr``, ``patch_radius`` for a field of an unnamed
section): :func:`replace_nested` takes overrides by key, :func:`flat_dict` lists a config by key, and
``config.json`` (:func:`save_config`, :func:`load_config`) nests named sections only.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import itertools
import json
import math
import numbers
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from encoders.utils.io import atomic_write_text

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field, ``Annotated[int, Range(1)]``: ``[low, high]`` (``low_open``:
    ``(low, high]``), ``None`` unbounded; never NaN or infinite. Checked by :func:`check_fields`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        if self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is None:
            return "a finite number"
        return f"{'>' if self.low_open else '>='} {self.low:g}"


ANY, NON_NEGATIVE, POSITIVE, AT_LEAST_1, UNIT = Range(), Range(0), Range(0, low_open=True), Range(1), Range(0, 1)


@dataclasses.dataclass(frozen=True)
class ConfigField:
    """A leaf field of a config, as :func:`config_fields` lists it."""

    path: tuple[str, ...]
    """attribute path from the root config (``("rules", "patch_radius")``)"""
    hint: Any
    """its type, without ``Optional`` and ``Annotated``"""
    optional: bool
    """whether ``None`` is allowed"""
    range: Range | None
    """the :class:`Range` in its type, if any"""
    doc: str = ""
    """its help text: the string literal after it in the class body"""


def _field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal that follows the field in the body of ``cls`` or of a dataclass base."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):  # no source (a class made at run time)
            continue
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
            ):
                docs[node.target.id] = " ".join(str(after.value.value).split())  # type: ignore[union-attr]
    return docs


def _unwrap(hint: Any) -> tuple[Any, tuple]:
    if get_origin(hint) is Annotated:
        return get_args(hint)[0], hint.__metadata__
    return hint, ()


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(tp)):
            return args[0], True
    return tp, False


@functools.cache
def config_fields(cls: type) -> dict[str, ConfigField]:
    """Key -> leaf field of dataclass ``cls``, recursing into sections (unnamed ones add no prefix to the key)."""
    out: dict[str, ConfigField] = {}
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        hint, meta = _unwrap(typing.get_type_hints(cls, include_extras=True)[f.name])
        if dataclasses.is_dataclass(hint):
            unnamed = any(getattr(m, "name", None) == "" for m in meta)
            for key, leaf in config_fields(hint).items():
                out[key if unnamed else f"{f.name}.{key}"] = dataclasses.replace(leaf, path=(f.name, *leaf.path))
        else:
            base, optional = _strip_optional(hint)
            base, inner = _unwrap(base)  # Annotated[int, AT_LEAST_1] | None
            range_ = next((m for m in (*meta, *inner) if isinstance(m, Range)), None)
            out[f.name] = ConfigField((f.name,), base, optional, range_, docs.get(f.name, ""))
    return out


def field_flag(key: str) -> str:
    """The command-line flag of a field's key: ``ppo.n_steps`` -> ``--ppo.n-steps``."""
    return "--" + key.replace("_", "-")


def flat_dict(cfg: Any) -> dict[str, Any]:
    """Every leaf field of a config by its key: ``{"optim.lr": 1e-3, "patch_radius": 1, ...}``."""
    return {key: functools.reduce(getattr, leaf.path, cfg) for key, leaf in config_fields(type(cfg)).items()}


def get_nested(cfg: Any, key: str) -> Any:
    """A field's value by its key (``get_nested(cfg, "optim.lr")``)."""
    return functools.reduce(getattr, config_fields(type(cfg))[key].path, cfg)


def changed_fields(before: Any, after: Any) -> dict[str, Any]:
    """Key -> value of ``after`` for every field whose value differs from ``before`` (same config class)."""
    old = flat_dict(before)
    return {k: v for k, v in flat_dict(after).items() if v != old[k]}


def _coerce(tp: Any, value: Any) -> Any:
    """Convert a JSON value back to the field's type (paths, tuples, floats written as ints)."""
    if value is None:
        return None
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (get_origin(tp) is tuple or tp is tuple) and isinstance(value, (list, tuple)):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return (
            tuple(_coerce(args[0] if len(args) == 1 else args[i], v) for i, v in enumerate(value))
            if args
            else tuple(value)
        )
    return value


def flatten_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"ppo": {"n_steps": 8}}`` -> ``{"ppo.n_steps": 8}`` (a JSON config's nested sections as keys)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten_keys(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {prefix + k: v})
    return out


def replace_nested(cfg: T, overrides: Mapping[str, Any]) -> T:
    """``dataclasses.replace`` by key (``{"optim.lr": 1e-3, "patch_radius": 2}``, or ``{"optim": {"lr": 1e-3}}``);
    an unknown key raises ``ValueError`` naming the known ones."""
    leaves = config_fields(type(cfg))
    by_path: dict[tuple[str, ...], Any] = {}
    for key, value in flatten_keys(overrides).items():
        if key not in leaves:
            raise ValueError(
                f"unknown config field {key!r} for {type(cfg).__name__}; known: {', '.join(sorted(leaves))}"
            )
        by_path[leaves[key].path] = _coerce(leaves[key].hint, value)

    def rebuild(obj: Any, prefix: tuple[str, ...]) -> Any:
        changes = {}
        for f in dataclasses.fields(obj):
            path = (*prefix, f.name)
            if path in by_path:
                changes[f.name] = by_path[path]
            elif any(p[: len(path)] == path for p in by_path):
                changes[f.name] = rebuild(getattr(obj, f.name), path)
        return dataclasses.replace(obj, **changes)

    return rebuild(cfg, ())


def check_fields(cfg: Any, name: Callable[[str], str] = field_flag) -> None:
    """``ValueError`` naming (``name(key)``: the flag by default) the first field whose value is not of its type
    (Literal choices, bool, number) or outside its :class:`Range`; for configs built in code, which no parser has
    checked."""
    fields = config_fields(type(cfg))
    for key, value in flat_dict(cfg).items():
        leaf = fields[key]
        tp, flag = leaf.hint, name(key)
        if value is None and leaf.optional:
            continue
        if get_origin(tp) is Literal and value not in get_args(tp):
            raise ValueError(f"{flag} must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
        if tp is bool and not isinstance(value, bool):
            raise ValueError(f"{flag} must be true or false, got {value!r}")
        element = get_args(tp)[0] if get_origin(tp) is tuple and get_args(tp) else tp
        if element in (int, float):
            for number in value if get_origin(tp) is tuple else (value,):
                if isinstance(number, bool) or not isinstance(number, numbers.Real):
                    raise ValueError(f"{flag} must be a number, got {value!r}")
                if number not in (leaf.range or ANY):
                    raise ValueError(f"{flag} must be {leaf.range or ANY}, got {value!r}")


def _flags(key: str, boolean: bool) -> tuple[str, ...]:
    """The flags of a field: ``--key``, and for a boolean its negation (``--no-flag``, ``--section.no-flag``)."""
    flag = field_flag(key)
    return (flag, re.sub(r"^--((?:[\w-]+\.)*)", r"--\1no-", flag)) if boolean else (flag,)


def parse_config(
    cls: type[T],
    argv: Sequence[str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    description: str | None = None,
    default_preset: str | None = None,
    preset_flag: str = "--preset",
    default: T | None = None,
) -> T:
    """A ``cls`` from the command line: :func:`tyro.cli` over ``default`` (``cls()`` if not given).

    ``presets``: name -> overrides by key; ``--preset NAME`` (``preset_flag``; ``default_preset`` when absent)
    applies one to the defaults, then the flags given override it. Flags are never abbreviated.
    """
    import tyro  # imported here: every package reads configs, only the command lines parse them

    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse's spelling of a nested boolean's negation (--no-train.progress) stays valid beside tyro's
    argv = [re.sub(r"^--no-(.+)\.", r"--\1.no-", a) if re.match(r"--no-[\w-]+\.[\w.-]+$", a) else a for a in argv]
    base = default
    description = (description or (cls.__doc__ or "").split("\n\n")[0]).strip()
    if presets:
        pre = argparse.ArgumentParser(prog=f"{preset_flag} NAME", add_help=False, allow_abbrev=False)
        pre.add_argument(preset_flag, dest="preset", choices=sorted(presets), default=default_preset)
        known, argv = pre.parse_known_args(argv)
        if known.preset:
            base = replace_nested(cls() if base is None else base, presets[known.preset])
        description += f"\n{preset_flag} NAME applies a named set of defaults first: {', '.join(sorted(presets))}"
    main = getattr(sys.modules.get("__main__"), "__spec__", None)  # `python -m pkg.cli`: name it so in the usage
    prog = f"python -m {main.name}" if main is not None and main.name else None
    flags = {"--help", *(flag for key, f in config_fields(cls).items() for flag in _flags(key, f.hint is bool))}
    unknown = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in flags]
    if unknown:  # one error line, as for every other bad input (tyro would draw a box)
        close = sorted(f for f in flags if f.startswith(unknown[0])) or difflib.get_close_matches(unknown[0], flags, 1)
        hint = f"; did you mean {' or '.join(close[:3])}?" if close else "; see --help"
        sys.stderr.write(f"error: unrecognized argument {unknown[0]}{hint}\n")
        raise SystemExit(2)
    if base is None:  # no default instance: fields without a default are required flags or positionals
        return tyro.cli(cls, args=argv, prog=prog, description=description)
    return tyro.cli(cls, args=argv, prog=prog, default=base, description=description)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, os.PathLike) else value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-safe dict of a config: named sections nested, paths as strings, tuples as lists."""
    out: dict[str, Any] = {}
    for key, value in flat_dict(cfg).items():
        *sections, name = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = _jsonable(value)
    return out


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Inverse of :func:`config_to_dict`; unknown keys raise ``ValueError`` (a config from another version)."""
    return replace_nested(cls(), data)


def save_config(cfg: Any, run_dir: str | os.PathLike, filename: str = "config.json") -> Path:
    """Write ``config.json`` (atomically) into ``run_dir``."""
    return atomic_write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n", Path(run_dir) / filename)


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read a config saved by :func:`save_config` (a run dir or the JSON file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved config at {path}; is this a run directory?")
    return config_from_dict(cls, json.loads(path.read_text()))
