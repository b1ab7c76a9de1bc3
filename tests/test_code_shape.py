"""The shape of the code (the layering issue's acceptance): modules under 400 lines, functions
under 60, no Optuna user attributes spelled outside the trial record and the objective, and no
import inside a function in nas/, compress/ and benchmarks/ (the layers make function-level imports needless;
the optional LiteRT extra, heavy to import and possibly absent, is loaded by name through the one
module that owns it, nas.deploy._optional)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for package in ("nas", "compress", "benchmarks") for p in (ROOT / package).rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# the trial record, and the coordination attributes of workers (candidate, skipped, at_chance; host, pid)
RECORD_OWNERS = {"nas/search/record.py", "nas/search/objective.py", "nas/search/slots.py", "nas/search/workers.py",
                 "nas/search/own_record.py", "nas/search/rungs.py"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_modules_are_under_400_lines() -> None:
    long = {_rel(p): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_functions_are_under_60_lines() -> None:
    long = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{_rel(path)}:{node.name}"] = n
    assert long == {}


def test_trial_attributes_are_spelled_only_by_the_record() -> None:
    spelled = [f"{_rel(p)}:{i}" for p in SOURCES if _rel(p) not in RECORD_OWNERS
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if ("set_user_attr(" in line and "study.set_user_attr(" not in line) or "user_attrs[" in line
               or "user_attrs.get(" in line]
    assert spelled == []


def test_no_imports_inside_functions() -> None:
    inside = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{_rel(path)}:{n.lineno}" for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert inside == []
