"""Typed dataclass configs that double as command-line interfaces (CleanRL / tyro style, no dependency).

A field's help text is the string literal on the line after it::

    @dataclass
    class TrainConfig:
        lr: float = 1e-3
        \"\"\"peak learning rate\"\"\"
        crops: tuple[int, int] = (224, 96)
        \"\"\"global and local crop sizes in pixels\"\"\"

``parse_config(TrainConfig, presets={"tiny": {"lr": 1e-2}})`` accepts ``--preset tiny --lr 3e-3
--crops 112 56``; nested dataclass fields become ``--section.field``. Every run saves the resolved
config with :func:`save_config` and resumes with :func:`load_config`.

A section declared with :func:`flat_section` composes another dataclass into a config without a prefix: its
fields are the parent's own flags (``--patch-radius``), override keys (``{"patch_radius": 2}``) and
``config.json`` keys, and (with the :class:`FlatSections` mixin) attributes for reading (``cfg.patch_radius``).
So a lower layer's dataclass is declared once and reused whole by a CLI config.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import os
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from encoders.utils.io import atomic_write_text

T = TypeVar("T")
_NONE_WORDS = {"none", "null"}
_FLAT = "semnav.flat_section"


def flat_section(cls: type) -> Any:
    """A dataclass field holding a ``cls`` section whose fields read, parse and save as the parent's own.

    ``rules: NavRules = flat_section(NavRules)`` gives ``--patch-radius`` (not ``--rules.patch-radius``), accepts
    ``{"patch_radius": 2}`` in :func:`replace_nested` and writes ``"patch_radius"`` at the top of ``config.json``.
    Field names must not collide with the parent's.
    """
    return dataclasses.field(default_factory=cls, metadata={_FLAT: True})


def is_flat_section(f: dataclasses.Field) -> bool:
    """Whether a dataclass field was declared with :func:`flat_section`."""
    return bool(f.metadata.get(_FLAT))


def _flat_owner(cls: type, name: str) -> str | None:
    """The flat section of dataclass ``cls`` that holds field ``name`` (searched recursively), or ``None``."""
    for f in dataclasses.fields(cls):
        if is_flat_section(f):
            section = _resolved_hints(cls)[f.name]
            if name in {g.name for g in dataclasses.fields(section)} or _flat_owner(section, name):
                return f.name
    return None


class FlatSections:
    """Mixin for a config dataclass with :func:`flat_section` fields: ``cfg.patch_radius`` reads
    ``cfg.rules.patch_radius``. Assigning such a name raises (sections are replaced whole, with
    :func:`replace_nested`)."""

    def __getattr__(self, name: str) -> Any:  # only called when the normal lookup fails
        owner = None if name.startswith("__") else _flat_owner(type(self), name)
        if owner is None or owner not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.__dict__[owner], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in getattr(self, "__dataclass_fields__", {}) and (owner := _flat_owner(type(self), name)):
            raise AttributeError(
                f"{name} belongs to the section {owner}; build a new config with replace_nested(cfg, {{{name!r}: ...}})"
            )
        super().__setattr__(name, value)


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring literal that follows it in the class body (base classes included)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(tp)):
            return args[0], True
    return tp, False


def _scalar_parser(tp: Any, optional: bool):
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        kind = type(choices[0])

        def parse_literal(text: str):
            if optional and text.lower() in _NONE_WORDS:
                return None
            value = kind(text)
            if value not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {text!r}; choose from {', '.join(map(str, choices))}")
            return value

        return parse_literal
    base = {int: int, float: float, str: str, Path: Path}.get(tp)
    if base is None:
        raise TypeError(f"unsupported config field type {tp!r}")

    def parse(text: str):
        if optional and text.lower() in _NONE_WORDS:
            return None
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _add_field(parser: argparse.ArgumentParser, dest: str, flag: str, tp: Any, default: Any, help_text: str) -> None:
    tp, optional = _strip_optional(tp)
    origin = get_origin(tp)
    help_text = f"{help_text} (default: {default!r})" if help_text else f"(default: {default!r})"
    help_text = help_text.replace("%", "%%")  # argparse %-formats help strings ("50% of ..." must stay literal)
    if tp is bool:
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=help_text)
    elif origin in (tuple, list, Sequence) or tp in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis] or [str]
        nargs: int | str = len(get_args(tp)) if origin is tuple and Ellipsis not in get_args(tp) else "*"
        metavar = args[0].__name__.upper() if hasattr(args[0], "__name__") else None
        parser.add_argument(
            flag,
            dest=dest,
            nargs=nargs,
            type=_scalar_parser(args[0], False),
            default=default,
            help=help_text,
            metavar=metavar,
        )
    else:
        kwargs: dict[str, Any] = {"metavar": flag.lstrip("-").replace("-", "_").upper()}  # the flag's, not dest's
        if get_origin(tp) is Literal:
            kwargs["metavar"] = "{" + ",".join(map(str, get_args(tp))) + "}"
        parser.add_argument(
            flag, dest=dest, type=_scalar_parser(tp, optional), default=default, help=help_text, **kwargs
        )


def field_flag(name: str) -> str:
    """The command-line flag of a (dotted) config field: ``ppo.n_steps`` -> ``--ppo.n-steps``."""
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    defaults: Any = None,
    prefix: str = "",
    flag_prefix: str | None = None,
    group: Any = None,
) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (recursing into nested dataclasses).

    ``prefix`` is the dotted path of ``cls`` in the parsed namespace; ``flag_prefix`` (default ``prefix``) the
    one its flags carry (the parent's for a :func:`flat_section`, whose flags also join the parent's group).
    """
    hints = _resolved_hints(cls)
    docs = field_docs(cls)
    defaults = defaults if defaults is not None else _default_instance(cls)
    flag_prefix = prefix if flag_prefix is None else flag_prefix
    if group is None:
        group = parser.add_argument_group(flag_prefix.rstrip(".") or cls.__name__) if flag_prefix else parser
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        value = getattr(defaults, f.name)
        dest = prefix + f.name
        if dataclasses.is_dataclass(tp):
            if is_flat_section(f):
                add_dataclass_arguments(parser, tp, value, dest + ".", flag_prefix, group)
            else:
                add_dataclass_arguments(parser, tp, value, prefix=dest + ".", flag_prefix=flag_prefix + f.name + ".")
            continue
        flag = field_flag(flag_prefix + f.name)
        _add_field(group, dest, flag, tp, value, docs.get(f.name, ""))


def _default_instance(cls: type) -> Any:
    try:
        return cls()
    except TypeError as e:
        raise TypeError(f"{cls.__name__} needs defaults for every field to be used as a CLI config") from e


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    hints = _resolved_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, values, prefix + f.name + ".")
        elif prefix + f.name in values:
            value = values[prefix + f.name]
            base, _ = _strip_optional(tp)
            if value is not None and (get_origin(base) is tuple or base is tuple):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    """Convert a JSON value back to the field's type (paths, tuples, floats written as ints)."""
    tp, _ = _strip_optional(tp)
    if value is None:
        return None
    origin = get_origin(tp)
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (origin is tuple or tp is tuple) and isinstance(value, (list, tuple)):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return (
            tuple(_coerce(args[0] if len(args) == 1 else args[i], v) for i, v in enumerate(value))
            if args
            else tuple(value)
        )
    return value


def get_nested(cfg: Any, key: str) -> Any:
    """A field's value by its dotted name: ``get_nested(cfg, "optim.lr")`` (a :func:`flat_section`'s fields by
    their own names)."""
    value = cfg
    for part in key.split("."):
        while dataclasses.is_dataclass(value) and part not in value.__dataclass_fields__:
            owner = _flat_owner(type(value), part)
            if owner is None:
                break
            value = getattr(value, owner)
        value = getattr(value, part)
    return value


def replace_nested(cfg: T, overrides: Mapping[str, Any]) -> T:
    """``dataclasses.replace`` that also accepts dotted keys for nested configs (``{"optim.lr": 1e-3}``)."""
    flat: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cfg)}
    hints = _resolved_hints(type(cfg))
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        owner = None if head in names else _flat_owner(type(cfg), head)
        if owner is not None:  # a flat section's field, by its own name
            flat.setdefault(owner, {})[key] = value
            continue
        if head not in names:
            known = ", ".join(sorted(config_to_dict(cfg)))
            raise ValueError(f"unknown config field {key!r} for {type(cfg).__name__}; known: {known}")
        if rest:
            flat.setdefault(head, {})[rest] = value
        elif isinstance(value, Mapping) and dataclasses.is_dataclass(getattr(cfg, head)):
            flat.setdefault(head, {}).update(value)
        else:
            direct[key] = _coerce(hints[key], value)
    for head, sub in flat.items():
        direct[head] = replace_nested(getattr(cfg, head), sub)
    return dataclasses.replace(cfg, **direct)


def parse_config(
    cls: type[T],
    argv: Sequence[str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    description: str | None = None,
    default_preset: str | None = None,
    extra_arguments: Any = None,
) -> T:
    """Build a ``cls`` instance from the command line.

    Args:
        cls: a dataclass whose fields all have defaults.
        argv: arguments (default ``sys.argv[1:]``).
        presets: name -> field overrides (dotted keys for nested configs); ``--preset NAME`` applies one,
            then explicit flags override it.
        description: the ``--help`` header.
        default_preset: preset applied when ``--preset`` is not given.
        extra_arguments: optional ``callable(parser)`` adding non-config arguments; the parsed namespace of
            those is then returned as a second value ``(cfg, namespace)``.
    """
    # no prefix abbreviations: '--phase1-ep' must not stand for '--phase1-episodes' (a resume re-reads the flags given)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    if presets:
        pre.add_argument("--preset", choices=sorted(presets), default=default_preset)
    known, _ = pre.parse_known_args(argv)
    defaults = _default_instance(cls)
    preset_name = getattr(known, "preset", None)
    if preset_name:
        defaults = replace_nested(defaults, presets[preset_name])

    parser = argparse.ArgumentParser(
        description=description or (inspect.getdoc(cls) or "").split("\n\n")[0], allow_abbrev=False
    )
    if presets:
        parser.add_argument(
            "--preset",
            choices=sorted(presets),
            default=preset_name,
            help="named set of defaults applied before the other flags: " + ", ".join(sorted(presets)),
        )
    if extra_arguments is not None:
        extra_arguments(parser)
    add_dataclass_arguments(parser, cls, defaults)
    ns = parser.parse_args(argv)
    cfg = _build(cls, vars(ns))
    if extra_arguments is not None:
        return cfg, ns  # type: ignore[return-value]
    return cfg


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = _jsonable(getattr(value, f.name))
            if is_flat_section(f):
                out.update(item)  # a flat section's fields sit beside the parent's
            else:
                out[f.name] = item
        return out
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-safe nested dict of a dataclass config (paths -> str, tuples -> lists)."""
    return _jsonable(cfg)


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Inverse of :func:`config_to_dict`; unknown keys raise ``ValueError`` (a config from another version)."""
    return replace_nested(_default_instance(cls), data)


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
