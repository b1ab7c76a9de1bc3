"""PartCosts: the same figures as count_costs, on random architectures of every kind."""
from __future__ import annotations

import numpy as np
import pytest

from nas.core.config import load_search_config
from nas.core.errors import UserError
from nas.cost.costs import count_costs
from nas.cost.parts import PartCosts
from nas.space.sampler import SearchSpace
from nas.supernet.space import PolicyChooser


def _random_specs(config: str, n: int, seed: int) -> list:
    cfg = load_search_config(config)
    space = SearchSpace(cfg.space, in_chs=1, num_classes=10)
    rng = np.random.default_rng(seed)
    return [space.sample(PolicyChooser(lambda _, c: c[int(rng.integers(len(c)))])) for _ in range(n)]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_equals_count_costs_on_random_architectures(precision: str) -> None:
    parts = PartCosts(precision)
    specs = _random_specs("quickstart", 12, seed=3) + _random_specs("supernet", 12, seed=4)
    for spec in specs + specs[:4]:  # the repeats come from the cache
        exact, fast = count_costs(spec, precision=precision), parts.costs(spec)
        assert (fast.macs, fast.params) == (exact.macs, exact.params), spec.format()
        assert fast.weight_mb == pytest.approx(exact.weight_mb, rel=1e-12), spec.format()
        assert fast.peak_activation_mb == pytest.approx(exact.peak_activation_mb, rel=1e-12), spec.format()
    assert parts.counted <= len(specs)


def test_cache_means_no_build_for_a_seen_network() -> None:
    parts = PartCosts()
    spec = _random_specs("supernet", 1, seed=0)[0]
    parts.costs(spec)
    counted = parts.counted
    parts.costs(spec)
    assert parts.counted == counted == 1


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(UserError, match="precision 'fp64' not allowed"):
        PartCosts("fp64")
