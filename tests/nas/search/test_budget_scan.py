"""Budgets priced against the space before the first trial, and an empty front explained."""
from __future__ import annotations

from dataclasses import replace
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas.cli import main
from nas.core.config import SearchConfig, parse_search_config
from nas.cost.costs import count_costs
from nas.data.splits import Splits
from nas.hardware.profiles import load_profile
from nas.search.budget_scan import coverage_note, explain_empty_front, scan_budgets
from nas.search.study import load_splits
from nas.space.arch import parse
from nas.space.sampler import SearchSpace
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> tuple[SearchConfig, Splits]:
    cfg = parse_search_config(tiny_config(idx_dir))
    return cfg, load_splits(cfg, cache_dir=tmp_path_factory.mktemp("cache"))


def _with(cfg: SearchConfig, profile: str, **budgets: float) -> SearchConfig:
    return replace(cfg, search=replace(cfg.search, profile=profile, budgets=replace(cfg.search.budgets, **budgets)))


def test_a_latency_budget_under_the_profiles_fixed_term_is_impossible(setup: tuple[SearchConfig, Splits]) -> None:
    cfg, splits = setup
    pi = load_profile("raspberry-pi4")
    cfg = _with(cfg, "raspberry-pi4", latency_ms=0.5)
    scan = scan_budgets(cfg, pi, splits, samples=4)
    fixed = pi.model["fp32"].run_overhead_ms if pi.model else 0.0
    assert fixed > 0.5  # the profile's per-inference term alone is above the budget
    cheapest = scan.lowest("latency_ms")
    assert cheapest is not None and cheapest.values["latency_ms"] >= fixed
    line = scan.impossible(cfg.search.budgets)
    assert line is not None and "\n" not in line
    assert "search.budgets.latency_ms 0.5 ms is below what any network" in line
    assert f"needs {cheapest.values['latency_ms']:.4g} ms" in line and "run_overhead_ms" in line
    # the floor is the space's cheapest: every numeric knob at its lowest
    low = parse(cheapest.arch)
    assert low.resolution == min(cfg.space.resolutions)


def test_budgets_in_and_above_the_range_are_described(setup: tuple[SearchConfig, Splits]) -> None:
    cfg, splits = setup
    scan = scan_budgets(_with(cfg, "cpu", macs=1e12), load_profile("cpu"), splits, samples=4)
    assert scan.impossible(replace(cfg.search.budgets, macs=1e12)) is None
    notes = scan.notes(replace(cfg.search.budgets, macs=1e12))
    assert notes[0].startswith("budgets priced on cpu@") and "does not bind" in notes[1]
    # MACs are the gate's own count for each priced network
    for priced in scan.priced:
        assert priced.values["macs"] == count_costs(parse(priced.arch), precision="fp32").macs
    low, high = scan.lowest("macs"), scan.highest("macs")
    assert low is not None and high is not None
    middle = (low.values["macs"] + high.values["macs"]) / 2
    line = scan.notes(replace(cfg.search.budgets, macs=middle))[1]
    meets = sum(p.values["macs"] <= middle for p in scan.priced)
    assert f"{meets} of {len(scan.priced)} priced networks meet it" in line and 0 < meets < len(scan.priced)
    assert scan.impossible(replace(cfg.search.budgets, macs=low.values["macs"] * 0.9)) is not None


def test_an_empty_front_names_the_binding_budget_and_the_closest_trial() -> None:
    trials = pd.DataFrame({"trial": [0, 1, 2], "macs": [3e6, 2.2e6, 5e6], "peak_memory_mb": [0.5, 0.7, 0.4],
                           "latency_ms": [None, None, None]})
    why = explain_empty_front(trials, {"macs": 2e6, "peak_memory_mb": 0.6, "latency_ms": None})
    assert why == ("no feasible trial: 3 of 3 priced candidates exceed search.budgets.macs 2M; closest: trial 1 "
                   "(macs 2.2M > 2M; peak_memory_mb 0.7 MB > 0.6 MB)")
    assert explain_empty_front(trials, {"macs": None}) is None


def test_search_with_an_impossible_budget_stops_before_training(tmp_path: Path, idx_dir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(idx_dir, budgets={"macs": 1000})))
    out = tmp_path / "run"
    assert main(["search", str(config), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "search.budgets.macs 0.001M is below what any network" in captured.err
    assert not out.exists()  # nothing written, nothing trained


def test_the_floor_is_the_spaces_cheapest_network(setup: tuple[SearchConfig, Splits]) -> None:
    """No network drawn at random from the space costs fewer MACs than the scan's floor (stages of
    different kinds, more groups in a grouped conv: the greedy cheapest mix finds it)."""
    cfg, splits = setup
    scan = scan_budgets(cfg, load_profile("cpu"), splits, samples=0)
    floor = scan.lowest("macs")
    assert floor is not None
    space = SearchSpace(cfg.space, in_chs=splits.preprocess.channels, num_classes=len(splits.classes))
    rng = random.Random(5)
    drawn = [space.sample(_Draw(rng)) for _ in range(80)]
    assert min(count_costs(spec).macs for spec in drawn) >= floor.values["macs"]


class _Draw:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: list[object]) -> object:
        return self.rng.choice(list(choices))


def test_a_profile_calibrated_far_from_the_space_says_so_with_what_to_do(setup: tuple[SearchConfig, Splits]) -> None:
    cfg, splits = setup
    note = coverage_note(_with(cfg, "jetson-nano"), load_profile("jetson-nano"), splits)
    assert note is not None and "so its latencies are EXTRAPOLATED; to price it from data" in note
    assert "hwnas profile calibrate jetson-nano --networks" in note and "M MACs; this space spans" in note
    assert coverage_note(cfg, load_profile("cpu"), splits) is None  # measured: nothing extrapolated


def test_a_latency_budget_under_the_devices_invocation_floor_names_the_floor(
        setup: tuple[SearchConfig, Splits], idx_dir: Path) -> None:
    raw = tiny_config(idx_dir, profile="edgetpu", budgets={"latency_ms": 0.5})
    raw["compression"] = {"quantize": ["static"]}  # the Edge TPU runs int8 only
    tpu = parse_search_config(raw)
    line = scan_budgets(tpu, load_profile("edgetpu"), setup[1], samples=2).impossible(tpu.search.budgets)
    assert line is not None and "needs 0.96 ms, the device's per-invocation floor" in line
