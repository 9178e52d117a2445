"""Configuration machinery: frozen dataclasses loaded from TOML, overridden from the CLI.

Every stage owns a frozen dataclass of its settings (``learner/config.py``,
``sources/config.py`` …) whose ``__post_init__`` checks values with
:func:`require`. This module turns nested dicts (from a TOML file and from
``--set section.key=value`` overrides) into those dataclasses, rejecting unknown
keys and wrong types with a :class:`ConfigError` that names the key and value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli

from biograd.core.errors import ConfigError

T = TypeVar("T")


def require(condition: bool, key: str, value: Any, rule: str) -> None:
    """Raise ``ConfigError("key = value: rule")`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key} = {value!r}: {rule}")


def load_toml(path: str | Path) -> dict:
    """Read a TOML file into a dict, naming the file in any parse error."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomli.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"learner.lr=1e-3"`` into (["learner", "lr"], 0.001); the value is read as TOML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. learner.lr=0.001")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = tomli.loads(f"v = {raw}")["v"]
    except tomli.TOMLDecodeError:
        value = raw  # bare words such as event or mirror are strings
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of nested ``data`` with each ``KEY=VALUE`` override set."""
    data = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def _deep_copy(data):
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    return data


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError.

    Nested dataclass fields are built recursively. ``prefix`` is the dotted path
    used in error messages (``"learner."``).
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass type
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(
            f"unknown config key {key!r} (value {data[unknown[0]]!r}); "
            f"valid keys in {prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None


def _coerce(hint, value, key: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {value!r}: expected a section (table)")
        return from_dict(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key} = {value!r}: wrong type")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} = {value!r}: must be one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(items))
        if len(items) != len(args):
            raise ConfigError(f"{key} = {value!r}: expected {len(args)} values")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, items)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
        return value
    if hint is Any:
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")


def to_dict(config) -> dict:
    """The dataclass as a plain nested dict (TOML/JSON-ready; tuples become lists)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(config)
