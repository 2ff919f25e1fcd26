"""Configuration: dataclasses loaded from YAML presets with strict keys and dotted overrides.

A typo is an error with a "did you mean"; `--set fusion.voxel_size=0.01` overrides one value;
the resolved config is saved in the workspace so a run can be reproduced.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recon.errors import ConfigError

T = TypeVar("T")
# A decimal number as people write it: 1e-6, 5E3, -.5, 0.01 (not nan/inf, which YAML spells .nan)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
PRESET_DIR = Path(__file__).parent / "presets"


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "", base: Any = None) -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and mistyped values.

    Keys merge into `base` (default: `cls()`, the dataclass defaults) one by one, recursively:
    a section that sets some keys keeps every other key's default, including nested sections
    built by a default factory (a preset's `align:` section must not drop `align.refine`).
    An explicit null still sets an optional field to None.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown config key '{where}{key}'", fix=_did_you_mean(key, fields))
    if base is None:
        base = _defaults(cls)
    kwargs = {} if base is None else {name: getattr(base, name) for name in fields}
    for name in fields:
        if name in data:
            default = None if base is None else getattr(base, name)
            kwargs[name] = _coerce(hints[name], data[name], f"{where}{name}", default)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid value in '{where.rstrip('.') or 'config'}': {exc}",
            fix="correct it with --set or in the --config file",
        ) from exc


def _defaults(cls: type[T]) -> T | None:
    """The dataclass built from its own defaults, or None when a field has no default."""
    try:
        return cls()
    except TypeError:
        return None


def _did_you_mean(key: str, fields: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid keys: {', '.join(sorted(fields))}"


def _coerce(hint: Any, value: Any, where: str, default: Any = None) -> Any:
    """Check/convert one value against its type hint (dataclass, Optional, list, scalars).

    default: the value being overridden; a mapping given for a dataclass merges into it.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(
                f"'{where}' must be a mapping, got {value!r}", fix=f"write {where}.KEY=VALUE"
            )
        base = default if isinstance(default, hint) else None
        return from_dict(hint, value, where + ".", base)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, default)
            except ConfigError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        raise ConfigError(f"'{where}' has an invalid value {value!r}", fix="see the presets")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"'{where}' is {value!r}", fix=f"use one of {', '.join(map(repr, args))}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"'{where}' must be a list, got {value!r}", fix=f"write {where}=[...]"
            )
        item = args[0] if args else Any
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-6 (no dot in the mantissa) as a string
    if hint is float:
        raise ConfigError(
            f"'{where}' must be a number, got {value!r}", fix=f"give {where} a number"
        )
    if hint in (int, str, bool) and not (isinstance(value, hint) and not _bool_as_int(hint, value)):
        raise ConfigError(
            f"'{where}' must be {hint.__name__}, got {value!r}",
            fix=f"give {where} a {hint.__name__}",
        )
    return value


def _bool_as_int(hint: Any, value: Any) -> bool:
    return hint is int and isinstance(value, bool)


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (for YAML/JSON and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['fusion.voxel_size=0.01', 'sfm.mapper=global'] -> nested dict (YAML-typed values)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' has no '='", fix="write --set section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"override '{item}': {exc}".replace("\n", " "), fix="quote or fix the value"
            ) from exc
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override '{item}' conflicts with another override", fix="drop one of them"
                )
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", path=path, fix="check the path") from exc
    except IsADirectoryError as exc:
        raise ConfigError(
            "config is a folder, not a file", path=path, fix="pass a .yaml file to --config"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "config is not a text (UTF-8 YAML) file", path=path, fix="pass a .yaml file"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"invalid YAML ({exc})".replace("\n", " "), path=path, fix="fix its syntax"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            "config must be a YAML mapping", path=path, fix="write section: {key: value}"
        )
    return data


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve(
    cls: type[T],
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
) -> T:
    """Preset, then a user YAML file, then --set overrides; strict at every layer."""
    data: dict[str, Any] = {}
    if preset:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset '{preset}'", fix=f"use one of {preset_names()}")
        data = load_yaml(path)
    if config_file:
        data = deep_merge(data, load_yaml(config_file))
    data = deep_merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
