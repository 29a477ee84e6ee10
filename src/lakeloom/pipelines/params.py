"""Typed step parameters: check a step's TOML keys against its params dataclass.

A step kind declares its keys as a dataclass: a field without a default is required, the
annotation is the type (``str``, ``int``, ``float``, ``bool``, ``datetime.date``,
``list[str]``, ``Literal[...]`` or ``X | None``). Cross-key rules go in ``__post_init__``,
raising ``ValueError`` (or ``InvalidArgument``) with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

__all__ = ["ParamsError", "build_params", "describe_type", "param_fields"]

T = TypeVar("T")

_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    datetime.date: "a date (2026-01-31)",
}


class ParamsError(ValueError):
    """A key is unknown, missing, or has a value of the wrong type.

    ``key`` is the offending key (None for a rule across keys).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def param_fields(cls: type[Any]) -> dict[str, tuple[Any, bool]]:
    """Each key of params dataclass ``cls``: its type and whether it is required."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass")
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Any, bool]] = {}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out[f.name] = (hints[f.name], required)
    return out


def describe_type(tp: Any) -> str:
    """How a type reads in an error message ("an integer", "one of 'a', 'b'")."""
    if tp in _NAMES:
        return _NAMES[tp]
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return f"a list of {describe_type(item).removeprefix('a ').removeprefix('an ')}s"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(True, value)`` when ``value`` fits ``tp`` (dates also from ISO strings)."""
    origin = get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return True, None
        for arg in get_args(tp):
            if arg is type(None):
                continue
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        return value in get_args(tp) and isinstance(value, str | int | bool), value
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        if not isinstance(value, list):
            return False, value
        items = [_coerce(v, item) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if tp is datetime.date:
        if isinstance(value, datetime.datetime):
            return True, value.date()
        if isinstance(value, datetime.date):
            return True, value
        if isinstance(value, str):
            try:
                return True, datetime.date.fromisoformat(value)
            except ValueError:
                return False, value
        return False, value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def build_params(cls: type[T], raw: Mapping[str, Any]) -> T:
    """An instance of params dataclass ``cls`` from ``raw`` keys, checked.

    Raises :class:`ParamsError` naming the key and what is allowed.
    """
    spec = param_fields(cls)
    allowed = ", ".join(spec) or "none"
    for key in raw:
        if key not in spec:
            raise ParamsError(f"unknown key {key!r}; allowed keys: {allowed}", key)
    values: dict[str, Any] = {}
    for key, (tp, required) in spec.items():
        if key not in raw:
            if required:
                raise ParamsError(f"missing required key {key!r} (keys: {allowed})", key)
            continue
        ok, value = _coerce(raw[key], tp)
        if not ok:
            raise ParamsError(f"key {key!r} must be {describe_type(tp)}, got {raw[key]!r}", key)
        values[key] = value
    try:
        return cls(**values)
    except ValueError as exc:
        raise ParamsError(str(exc)) from None
