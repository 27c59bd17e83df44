"""Reading a training configuration: the YAML file, overrides, and the check of every value's type.

Values are checked against the real types of the settings dataclasses (for the
policy: LeRobot's DiffusionConfig annotations), so a typo in a YAML value is an
error naming the option before anything starts. Keys that no dataclass knows go
to ``extra`` and pass through to ``lerobot-train`` unchanged.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from dp_ros.training.configuration_training import SECTIONS, TrainingConfig, TrainingConfigError, flatten


def load_training_config(path: str | Path | None = None,
                         overrides: Mapping[str, Any] | Sequence[str] | None = None) -> TrainingConfig:
    """Read a training YAML (``train:`` section, or the options at top level), apply
    overrides ({"policy.horizon": 32} or ["policy.horizon=32"]) and validate.

    With no path, the defaults are the starting point.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise TrainingConfigError(f"training config {path} does not exist; copy config/train.yaml and edit it")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"training config {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise TrainingConfigError(f"training config {path} must be a mapping with a 'train:' section")
        data = loaded.get("train", loaded)
        if not isinstance(data, dict):
            raise TrainingConfigError(f"the 'train:' section of {path} must be a mapping of options")
    for key, value in parse_overrides(overrides).items():
        set_dotted(data, key, value)
    config = config_from_dict(data)
    config.validate()
    return config


def with_overrides(config: TrainingConfig, overrides: Mapping[str, Any] | Sequence[str] | None) -> TrainingConfig:
    """A copy of ``config`` with dotted overrides applied and validated."""
    if not overrides:
        return config
    data = config.to_dict()
    parsed = parse_overrides(overrides)
    for key, value in parsed.items():
        set_dotted(data, key, value)
    updated = config_from_dict(data)
    updated.given = set(config.given) | set(parsed)
    updated.validate()
    return updated


def given_options(data: Mapping[str, Any]) -> set[str]:
    """Dotted names of the options present in a (nested) configuration mapping."""
    names = set()
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            names.update(f"{key}.{sub}" for sub in value)
        else:
            names.add(str(key))
    return names


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """{"a.b": value} as given, or ["a.b=value", ...] with YAML-parsed values."""
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise TrainingConfigError(f"override {item!r} must look like name=value, e.g. policy.horizon=32")
        try:
            parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    return parsed


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def config_from_dict(data: Mapping[str, Any]) -> TrainingConfig:
    """Build a TrainingConfig; keys it does not know go to ``extra`` under their dotted name."""
    extra = flatten(data.get("extra") or {})
    top_types = field_types(TrainingConfig)
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in data.items():
        if key == "extra":
            continue
        if key in SECTIONS:
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                problems.append(f"{key}: expected a mapping of options, got {value!r}")
                continue
            kwargs[key] = _build_section(SECTIONS[key], value, key, extra, problems)
        elif key in top_types and key != "given":
            kwargs[key] = checked(key, value, top_types[key], problems)
        else:
            extra.update(flatten({key: value}))
    if problems:
        raise TrainingConfigError("invalid training configuration:\n  - " + "\n  - ".join(problems))
    return TrainingConfig(extra=extra, given=given_options(data), **kwargs)


def _build_section(cls: type, values: Mapping[str, Any], prefix: str, extra: dict[str, Any], problems: list[str]):
    known = field_types(cls)
    kwargs = {}
    for key, value in values.items():
        if key in known:
            kwargs[key] = checked(f"{prefix}.{key}", value, known[key], problems)
        else:
            extra.update(flatten({f"{prefix}.{key}": value}))
    return cls(**kwargs)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of a settings dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


def checked(name: str, value: Any, expected: Any, problems: list[str]) -> Any:
    """``value`` as a YAML reader gives it, checked against a type (lists stand for tuples)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) not in args:
                problems.append(f"{name}: must be set (got null)")
            return value
        options = [a for a in args if a is not type(None)]
        return checked(name, value, options[0] if len(options) == 1 else Any, problems)
    if value is None:
        if expected is not Any:
            problems.append(f"{name}: must be set (got null)")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            problems.append(f"{name}: expected true or false, got {value!r}")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name}: expected a whole number, got {value!r}")
    elif expected is float:
        return _number(name, value, problems)
    elif expected is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(f"{name}: expected text, got {value!r}")
            return value
        return str(value)
    elif expected in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{name}: expected a list like [1, 2], got {value!r}")
            return value
        items = [a for a in args if a is not Ellipsis]
        if origin is tuple and Ellipsis not in args and items and len(value) != len(items):
            problems.append(f"{name}: expected {len(items)} values, got {list(value)}")
        return [checked(f"{name}[{i}]", v, items[min(i, len(items) - 1)] if items else Any, problems)
                for i, v in enumerate(value)]
    elif expected is dict or origin is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{name}: expected a mapping, got {value!r}")
            return value
        return dict(value)
    return value


def _number(name: str, value: Any, problems: list[str]) -> Any:
    if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as text
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{name}: expected a number, got {value!r}")
        return value
    return float(value)
