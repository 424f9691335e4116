"""The environments' input contract, checked at their entry points before any work.

Gymnasium's rules, with messages that say what was expected instead of failing deep inside:

- :func:`check_argument_types`: constructor arguments annotated ``int``, ``float``, ``bool`` or ``str`` (optionally
  ``| None``) get a value of that type (``gym.make("ImageNav-v0", n_scenes="2")`` is a ``TypeError`` here, not a
  comparison error in the scene loader);
- :func:`check_action` / :func:`check_actions`: an action is an integer (a Python ``int``, a numpy integer, or a
  0-d or shape-``(1,)`` integer array, as ``Discrete.contains`` accepts); floats, strings, booleans and anything
  else are a ``TypeError`` rather than silently cast;
- :func:`check_options`: ``reset(options=...)`` is a dict or ``None``;
- :data:`RESET_NEEDED`: ``step()`` / ``render()`` before ``reset()`` raise :class:`gymnasium.error.ResetNeeded`, as
  the ``OrderEnforcing`` wrapper of ``gym.make`` does.
"""

from __future__ import annotations

import inspect
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded

_SIMPLE_TYPES: dict[type, str] = {int: "an int", float: "a number", bool: "a bool", str: "a string"}

RESET_NEEDED = {
    "step": "Cannot call env.step() before calling env.reset()",
    "render": "Cannot call env.render() before calling env.reset()",
}


def _expected(hint: Any) -> tuple[type, bool] | None:
    """``(type, None allowed)`` for ``int``, ``float``, ``bool``, ``str`` hints (optionally ``| None``)."""
    if hint in _SIMPLE_TYPES:
        return hint, False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2 and rest[0] in _SIMPLE_TYPES:
            return rest[0], True
    return None


def _is_instance(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, kind)


def check_argument_types(values: Mapping[str, Any], *signatures: Callable[..., Any] | type) -> None:
    """Raise ``TypeError`` for a value in ``values`` whose parameter (in any of ``signatures``, functions or
    dataclasses) is annotated with a plain ``int`` / ``float`` / ``bool`` / ``str`` (optionally ``| None``) and gets
    something else. Other annotations are left to the code that uses them."""
    hints: dict[str, Any] = {}
    for target in signatures:
        hints.update(typing.get_type_hints(inspect.unwrap(target)))
    for name, value in values.items():
        expected = _expected(hints.get(name))
        if expected is None:
            continue
        kind, optional = expected
        if (value is None and optional) or _is_instance(value, kind):
            continue
        allowed = _SIMPLE_TYPES[kind] + (" or None" if optional else "")
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")


def _action_text(n_actions: int) -> str:
    return f"an integer in [0, {n_actions})"


def check_action(action: Any, n_actions: int) -> int:
    """One env's action as an ``int``: a Python or numpy integer, or a 0-d / shape-``(1,)`` integer array.

    Raises:
        TypeError: anything else (a float, a string, a bool, a float array, an array of another shape).
    """
    accepted = "(a Python int, a numpy integer, or a 0-d or shape-(1,) integer array)"
    if isinstance(action, (bool, np.bool_)):
        raise TypeError(f"action must be {_action_text(n_actions)} {accepted}, got the bool {action!r}")
    if isinstance(action, numbers.Integral):
        return int(action)
    if isinstance(action, np.ndarray):
        if action.dtype.kind not in "iu":
            raise TypeError(
                f"action must be {_action_text(n_actions)} {accepted}, got an array of dtype {action.dtype}"
            )
        if action.shape not in ((), (1,)):
            raise TypeError(
                f"action must be {_action_text(n_actions)} {accepted}, got an array of shape {action.shape}; "
                "one env takes one action (several agents: envs.ImageNavVecEnv)"
            )
        return int(action.reshape(-1)[0])
    raise TypeError(f"action must be {_action_text(n_actions)} {accepted}, got {type(action).__name__} {action!r}")


def check_actions(actions: Any, num_envs: int, n_actions: int) -> np.ndarray:
    """A vector env's actions as an ``(num_envs,)`` int64 array: integers (array, list or scalar), one per agent.

    Raises:
        TypeError: the actions are not integers (floats, strings, booleans, objects).
        ValueError: not ``num_envs`` of them.
    """
    a = np.asarray(actions)
    if a.dtype.kind not in "iu":
        raise TypeError(
            f"actions must be {num_envs} integers in [0, {n_actions}) (one per agent), got dtype {a.dtype}: {actions!r}"
        )
    if a.size != num_envs or a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 1):
        raise ValueError(f"expected {num_envs} actions (shape ({num_envs},)), got an array of shape {a.shape}")
    return a.astype(np.int64, copy=False).reshape(num_envs)


def check_options(options: Any) -> dict[str, Any] | None:
    """``reset(options=...)``: ``None`` or a dict (keys: see the env's Starting State section)."""
    if options is None or isinstance(options, Mapping):
        return None if options is None else dict(options)
    raise TypeError(
        "options must be a dict such as {'scene_index': 0, 'start': (2, 3)} (the keys are listed under Starting "
        f"State in help(envs.ImageNavEnv)) or None, got {type(options).__name__} {options!r}"
    )


def require_reset(has_reset: bool, call: str) -> None:
    """Raise :class:`gymnasium.error.ResetNeeded` for ``call`` (``"step"`` / ``"render"``) before ``reset()``."""
    if not has_reset:
        raise ResetNeeded(RESET_NEEDED[call])


__all__ = ["RESET_NEEDED", "check_action", "check_actions", "check_argument_types", "check_options", "require_reset"]
