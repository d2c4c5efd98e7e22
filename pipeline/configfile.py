"""Typed, frozen config objects built from TOML tables, with one-line errors."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A job file problem, phrased as one line a person can act on."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin in (dict, Mapping, typing.Mapping):
        key, value = get_args(tp)
        return f"table of {_type_name(key)} -> {_type_name(value)}"
    if tp is type(None):
        return "none"
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it in its frozen form."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: got {_describe(value)}, allowed: {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected none, got {_describe(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {_describe(value)}")
        return build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
        key_tp, value_tp = get_args(tp)
        frozen = {
            coerce(k, key_tp, where): coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()
        }
        return types.MappingProxyType(frozen)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config annotation {tp!r} at {where}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")


def build(cls: type, table: Mapping[str, Any], where: str) -> Any:
    """Build the frozen dataclass `cls` from a TOML table, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "(none)"
        section = f"{where}: unknown key" if where else "unknown section"
        raise ConfigError(f"{section} {unknown[0]!r}; allowed: {allowed}")
    kwargs = {}
    for name, value in table.items():
        kwargs[name] = coerce(value, hints[name], f"{where}.{name}" if where else name)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}" if where else f"missing required section [{missing[0]}]")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def parse_file_table(cls: type, table: Mapping[str, Any], source: str) -> Any:
    """Build `cls` from a parsed TOML file; errors are one line naming the file and the key."""
    try:
        return build(cls, table, "")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def read_toml(path: str | os.PathLike, kind: str = "job file") -> dict[str, Any]:
    """A TOML file's table; an unreadable file or invalid TOML is a one-line ConfigError."""
    try:
        raw = open(path, "rb").read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {kind} ({error.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def to_table(config: Any) -> dict[str, Any]:
    """The inverse of `build`: plain dicts, lists and scalars, ready for TOML."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_table(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): to_table(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_table(v) for v in config]
    return config
