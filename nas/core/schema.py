"""Mapping -> frozen dataclass, rejecting unknown keys and wrongly typed values by name.

Supports the field types our config files use: bool, int, float, str, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses (including tuples of them). Value rules beyond types live
in each dataclass's ``__post_init__`` and raise :class:`UserError` via :func:`check`.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from nas.core.errors import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


# Bounds on what a config or recipe file may hold: its size, and the values it expands to (YAML
# aliases share one node many times: nine levels of nine aliases are 9**9 values) and their depth.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 50


def load_yaml(path: Path) -> Any:
    """The YAML content of ``path``; a syntax error is a one-line UserError naming the file and the place."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); allowed: a readable YAML file") from None
    if size > MAX_YAML_BYTES:
        raise UserError(f"{path}: {size:,} bytes; allowed: YAML files up to {MAX_YAML_BYTES:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); allowed: a UTF-8 YAML file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); allowed: a readable YAML file") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> data, bounded (:data:`MAX_YAML_BYTES`, :data:`MAX_YAML_VALUES` after aliases,
    :data:`MAX_YAML_DEPTH`); anything wrong is a one-line UserError naming ``where``."""
    if len(text) > MAX_YAML_BYTES:
        raise UserError(f"{where}: {len(text):,} characters; allowed: YAML up to {MAX_YAML_BYTES:,}")
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deeply to read; allowed: up to {MAX_YAML_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise UserError(f"{where}: {str(exc).split(';')[0]}") from None
    _bounded(data, where)
    return data


def _bounded(data: Any, where: str) -> None:
    """Refuse data that expands to more than MAX_YAML_VALUES values or nests deeper than
    MAX_YAML_DEPTH, counting each shared (aliased) node every time it is used, without expanding it."""
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise UserError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels; allowed: up to {MAX_YAML_DEPTH}")
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_VALUES:
                raise UserError(f"{where}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases?); "
                                f"allowed: up to {MAX_YAML_VALUES:,}")
        sizes[id(node)] = total
        return total

    size(data, 0)


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # a mapping or list as a key (``? {a: 1}``): no config has one
                raise yaml.constructor.ConstructorError(None, None, "a mapping or list used as a key",
                                                        key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def check(condition: bool, where: str, value: object, allowed: str) -> None:
    """Raise a one-line UserError unless ``condition`` holds."""
    if not condition:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise UserError(f"{where}: {shown} not allowed; allowed: {allowed}")


def check_choices(values: Iterable[object], where: str, allowed: Iterable[object]) -> None:
    allowed = tuple(allowed)
    for value in values:
        check(value in allowed, where, value, ", ".join(map(str, allowed)))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(inner[0], value, where)
    if origin is dict:
        value_type = typing.get_args(tp)[1]
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_mapping(tp, value, where)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UserError(f"{where}: {value!r} not allowed; allowed: finite numbers")
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if tp is str and not isinstance(value, str):
        raise UserError(f"{where}: expected a string, got {value!r}")
    if tp is float and not isinstance(value, float):
        raise UserError(f"{where}: expected a number, got {value!r}")
    return value


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build ``cls`` from ``data``; keys missing from ``data`` take the dataclass defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, field in fields.items():
        key_where = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key_where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UserError(f"{where or 'config'}: missing required key {name!r}")
    return cls(**kwargs)
