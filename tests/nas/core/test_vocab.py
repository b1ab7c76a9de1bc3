"""The shared vocabularies agree with each other and with the modules that use them."""
from __future__ import annotations

from nas.core.vocab import BUDGET_KEYS, BYTES_PER_ELEMENT, LATENCY_KINDS, OBJECTIVES, PRECISIONS
from nas.hardware.profiles import PROFILE_KINDS


def test_vocabularies_agree() -> None:
    assert set(BYTES_PER_ELEMENT) == set(PRECISIONS) and BYTES_PER_ELEMENT == {"fp32": 4, "fp16": 2, "int8": 1}
    assert set(OBJECTIVES.values()) == {"maximize", "minimize"} and OBJECTIVES["accuracy"] == "maximize"
    assert set(BUDGET_KEYS) <= set(OBJECTIVES)
    assert LATENCY_KINDS == ("measured", "predicted") and PROFILE_KINDS == (*LATENCY_KINDS, "remote")  # remote: measured
