"""The supernet's space derived from the search space and its budgets; budget-aware subnetwork draws."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nas.core.config import Budgets, load_search_config
from nas.core.errors import UserError
from nas.cost.costs import count_costs
from nas.cli.supernet import _print_space
from nas.search.on_supernet import supernet_space
from nas.supernet.derive import MAX_WIDTH_RANGE, SLACK, derive_space
from nas.supernet.sampling import SubnetSampler
from nas.supernet.space import SupernetSpace, stage_kinds

CFG = load_search_config("supernet")


def _derived(budgets: Budgets = CFG.search.budgets):  # type: ignore[no-untyped-def]
    return derive_space(CFG.space, budgets, in_chs=1, num_classes=10)


def test_derived_space_follows_the_anchors_and_fits_the_budget() -> None:
    derived = _derived()
    space = derived.space
    assert all(len(kinds) == 1 for kinds in stage_kinds(space))  # one kind per stage
    assert 1 not in space.exp_ratios and set(space.exp_ratios) == {3, 4, 6}
    assert max(space.widths) / min(space.widths) <= MAX_WIDTH_RANGE
    largest = count_costs(SupernetSpace(space, in_chs=1, num_classes=10).largest())
    budgets = CFG.search.budgets
    assert budgets.macs is not None and budgets.peak_memory_mb is not None
    assert largest.macs <= SLACK * budgets.macs and largest.memory_mb <= SLACK * budgets.peak_memory_mb
    # the written space's largest is about 6x over; each narrowing is said, with its reason
    assert any("widths 1.25 left out" in n and "15.64 M MACs" in n for n in derived.notes)
    assert any("expansion 1 left out" in n for n in derived.notes)
    assert derive_space(space, budgets, in_chs=1, num_classes=10) == dataclasses.replace(derived, notes=())


def test_a_looser_budget_keeps_wider_networks() -> None:
    loose = _derived(Budgets(macs=20e6, peak_memory_mb=4.0)).space
    assert max(loose.widths) == 1.25 and min(loose.widths) >= 1.25 / MAX_WIDTH_RANGE


def test_a_budget_below_the_smallest_settings_is_said() -> None:
    derived = _derived(Budgets(macs=1_000))
    assert "stays over budget" in derived.notes[-1]
    assert len(derived.space.widths) == len(derived.space.kernels) == len(derived.space.resolutions) == 1


def test_given_keeps_the_space_as_written() -> None:
    cfg = dataclasses.replace(CFG, supernet=dataclasses.replace(CFG.supernet, space="given"))
    assert supernet_space(cfg, in_chs=1, num_classes=10).space == CFG.space
    assert supernet_space(CFG, in_chs=1, num_classes=10).space == _derived().space


def test_macs_sampling_draws_feasible_subnetworks_spread_over_the_budget() -> None:
    space = SupernetSpace(_derived().space, in_chs=1, num_classes=10)
    budgets = Budgets(macs=1_500_000, peak_memory_mb=0.5)  # tighter than the space: uniform draws break it
    assert budgets.macs is not None
    targeted, uniform = SubnetSampler(space, budgets, "macs"), SubnetSampler(space, budgets, "uniform")
    rng = np.random.default_rng(0)
    drawn = [targeted.draw(rng, 24) for _ in range(60)]
    assert all(s.resolution == 24 and targeted.fits(s) for s in drawn)
    plain = [uniform.draw(rng, 24) for _ in range(60)]
    assert not all(targeted.fits(s) for s in plain)  # uniform draws ignore the budget
    macs = np.array([targeted.costs.costs(s).macs for s in drawn])
    low = targeted.costs.costs(dataclasses.replace(space.smallest(), resolution=24)).macs
    # targets spread from the smallest to the budget: both ends of the range are visited
    assert macs.min() < low + 0.25 * (budgets.macs - low) and macs.max() > low + 0.6 * (budgets.macs - low)
    again = SubnetSampler(space, budgets, "macs")
    assert [again.draw(np.random.default_rng(0), 24).format() for _ in range(3)] == \
        [targeted.draw(np.random.default_rng(0), 24).format() for _ in range(3)]


def test_config_refuses_unknown_space_and_sampling() -> None:
    with pytest.raises(UserError, match="supernet.space"):
        dataclasses.replace(CFG.supernet, space="wide")
    with pytest.raises(UserError, match="supernet.sampling"):
        dataclasses.replace(CFG.supernet, sampling="flops")


def test_train_says_what_it_left_out_or_warns_about_a_given_space(capsys: pytest.CaptureFixture[str]) -> None:
    _print_space(CFG, supernet_space(CFG, in_chs=1, num_classes=10))
    derived = capsys.readouterr().out
    assert derived.startswith("supernet space derived from space and search.budgets") and "widths 1.25" in derived
    given = dataclasses.replace(CFG, supernet=dataclasses.replace(CFG.supernet, space="given"))
    _print_space(given, supernet_space(given, in_chs=1, num_classes=10))
    warned = capsys.readouterr().out
    assert warned.startswith("warning: supernet.space: given keeps a space too wide") and "15.64 M MACs" in warned
