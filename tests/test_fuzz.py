"""A few hundred generated cases per target (tests/fuzz_cases.py): accepted, or refused with a
UserError, never another exception; benchmarks/faults.py runs thousands."""
from __future__ import annotations

import pytest

from tests.fuzz_cases import TARGETS, check_argv, check_yaml, run_target

EXAMPLES = {"arch": 400, "config": 300, "yaml": 300, "argv": 150, "image": 100}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_generated_inputs_are_accepted_or_refused_in_one_line(target: str) -> None:
    run_target(target, EXAMPLES[target], seed=1)


def test_findings_stay_fixed() -> None:
    """Inputs the fuzzing found, kept as examples (benchmarks/results/faults.md)."""
    check_yaml("? {a: 1}\n: x\n")  # a mapping as a key: TypeError 'unhashable type: dict' before
    check_argv((["front"], ["onnx", "\r"]))  # a carriage return split argparse's one-line error
