"""Mapping -> frozen dataclass: unknown keys, wrong types and missing keys are one-line errors naming them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nas.core.errors import UserError
from nas.core.schema import check, check_choices, from_mapping, load_yaml


@dataclass(frozen=True)
class Inner:
    k: int = 3


@dataclass(frozen=True)
class Outer:
    name: str
    ratio: float = 0.5
    flags: tuple[bool, ...] = (False,)
    inner: Inner = field(default_factory=Inner)
    table: dict[str, int] = field(default_factory=dict)
    maybe: int | None = None


def test_values_convert_and_defaults_fill_in() -> None:
    out = from_mapping(Outer, {"name": "a", "ratio": 1, "flags": [True, False], "inner": {"k": 5},
                               "table": {"x": 1}}, "cfg")
    assert out == Outer("a", 1.0, (True, False), Inner(5), {"x": 1}, None)
    assert isinstance(out.ratio, float) and isinstance(out.flags, tuple)
    assert from_mapping(Outer, {"name": "b"}, "cfg") == Outer("b")


@pytest.mark.parametrize("data, message", [
    ({"name": "a", "ratoi": 1}, "cfg: unknown key 'ratoi'; allowed: name, ratio, flags, inner, table, maybe"),
    ({}, "cfg: missing required key 'name'"),
    ({"name": 3}, "cfg.name: expected a string, got 3"),
    ({"name": "a", "ratio": "x"}, "cfg.ratio: expected a number, got 'x'"),
    ({"name": "a", "flags": [1]}, r"cfg.flags\[0\]: expected true or false, got 1"),
    ({"name": "a", "inner": {"k": True}}, "cfg.inner.k: expected an integer, got True"),
    ({"name": "a", "table": [1]}, "cfg.table: expected a mapping, got \\[1\\]"),
    ({"name": "a", "flags": True}, "cfg.flags: expected a list, got True"),
    ([1, 2], "cfg: expected a mapping of keys"),
])
def test_bad_input_is_named(data: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        from_mapping(Outer, data, "cfg")


def test_checks_and_yaml_errors_are_one_line(tmp_path: Path) -> None:
    check(True, "x", 1, "anything")
    with pytest.raises(UserError, match="^x: 0 not allowed; allowed: integers >= 1$"):
        check(False, "x", 0, "integers >= 1")
    with pytest.raises(UserError, match="^k: 5 not allowed; allowed: 3, 7$"):
        check_choices([3, 5], "k", (3, 7))
    path = tmp_path / "c.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match=r"c.yaml: not valid YAML at line 2, column 1") as info:
        load_yaml(path)
    assert "\n" not in str(info.value)
    path.write_text("a: 1\nb: [x]\n")
    assert load_yaml(path) == {"a": 1, "b": ["x"]}
