"""The search-efficiency benchmark's own arithmetic: hypervolume against an exact brute force,
time to a target, the rank test, and the surrogate recovering a known function on held-out points."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from search_stats import curve, front, hypervolume, rank_test, time_to_reach  # noqa: E402
from search_table import GP  # noqa: E402


def _brute_force(points: list[tuple[float, float, float]], ref: tuple[float, float, float]) -> float:
    """Exact volume of the union of boxes by coordinate compression."""
    axes = [sorted({ref[d], *(p[d] for p in points)}) for d in range(3)]
    total = 0.0
    for i, j, k in itertools.product(*(range(len(a) - 1) for a in axes)):
        lo = (axes[0][i], axes[1][j], axes[2][k])
        hi = (axes[0][i + 1], axes[1][j + 1], axes[2][k + 1])
        # cell covered when some point has accuracy >= the cell's top and costs <= the cell's bottom
        if any(p[0] >= hi[0] and p[1] <= lo[1] and p[2] <= lo[2] for p in points):
            total += (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
    return total


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_equals_the_brute_force_union_of_boxes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = (0.1, 1.0, 2.0)
    points = [(float(a), float(b), float(c)) for a, b, c in zip(rng.uniform(0, 1, 12), rng.uniform(0, 1.2, 12),
                                                               rng.uniform(0, 2.5, 12))]
    inside = [p for p in points if p[0] > ref[0] and p[1] < ref[1] and p[2] < ref[2]]
    assert hypervolume(points, ref) == pytest.approx(_brute_force(inside, ref), rel=1e-9)
    assert hypervolume([points[i] for i in front(points)], ref) == pytest.approx(hypervolume(points, ref))


def test_curve_time_to_target_and_rank_test() -> None:
    ref = (0.0, 1.0, 1.0)
    events = [(10.0, (0.5, 0.5, 0.5)), (30.0, (0.8, 0.5, 0.5))]
    grid = np.array([0.0, 10.0, 20.0, 30.0])
    hv = curve(events, grid, ref)
    assert list(hv) == pytest.approx([0.0, 0.125, 0.125, 0.2])
    assert time_to_reach(hv, grid, 0.2) == 30.0 and time_to_reach(hv, grid, 0.3) is None
    assert rank_test([5, 6, 7, 8, 9], [0, 1, 2, 3, 4]) < 0.01
    assert rank_test([0, 1, 2, 3, 4], [5, 6, 7, 8, 9]) > 0.9


def test_the_surrogate_gp_recovers_a_smooth_function_on_held_out_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (120, 3))
    y = 0.8 + 0.05 * np.sin(x[:, 0]) + 0.02 * x[:, 1] ** 2 - 0.03 * x[:, 2] + rng.normal(0, 0.002, 120)
    model = GP().fit(x[:80], y[:80])
    error = np.abs(model.predict(x[80:]) - y[80:])
    assert error.mean() < 0.01 and model.noise < 0.02
