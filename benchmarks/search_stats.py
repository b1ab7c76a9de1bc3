"""Hypervolume over time and the statistics of the search-efficiency benchmark.

Objectives: validation accuracy (maximised), host latency in ms and MACs in millions (minimised);
only feasible trials count. The hypervolume is the volume those points dominate up to a fixed
reference point per dataset (accuracy at chance level, the MACs budget, a latency above every
candidate of the space), in units of accuracy x ms x M MACs: not normalised.

>>> hypervolume([(0.5, 1.0, 1.0)], (0.0, 2.0, 2.0))
0.5
>>> hypervolume([(0.5, 1.0, 1.0), (0.5, 1.0, 1.0), (0.2, 0.0, 0.0)], (0.0, 2.0, 2.0))
1.1
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

Point = tuple[float, float, float]  # accuracy (max), latency ms (min), MACs in M (min)


def _area_2d(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated (both minimised) up to ``ref``."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume(points: Sequence[Point], ref: Point) -> float:
    """Exact 3-D hypervolume by slicing along accuracy."""
    inside = sorted({p for p in points if p[0] > ref[0] and p[1] < ref[1] and p[2] < ref[2]}, key=lambda p: -p[0])
    total = 0.0
    for i, (acc, _, _) in enumerate(inside):
        lower = inside[i + 1][0] if i + 1 < len(inside) else ref[0]
        if acc > lower:
            total += (acc - lower) * _area_2d([(p[1], p[2]) for p in inside[:i + 1]], (ref[1], ref[2]))
    return round(total, 12)


def front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points."""
    def dominated(a: Point, b: Point) -> bool:  # b dominates a
        return b[0] >= a[0] and b[1] <= a[1] and b[2] <= a[2] and b != a
    return [i for i, p in enumerate(points) if not any(dominated(p, q) for q in points)]


def curve(events: Sequence[tuple[float, Point]], grid: np.ndarray, ref: Point) -> np.ndarray:
    """Hypervolume of the events ended by each time of ``grid``."""
    ordered = sorted(events)
    out, upto = [], []
    k = 0
    for t in grid:
        while k < len(ordered) and ordered[k][0] <= t:
            upto.append(ordered[k][1])
            k += 1
        out.append(hypervolume(upto, ref))
    return np.asarray(out)


def time_to_reach(median_curve: np.ndarray, grid: np.ndarray, target: float) -> float | None:
    """First time the median curve reaches ``target`` (None: never within the budget)."""
    hits = np.nonzero(median_curve >= target - 1e-12)[0]
    return float(grid[hits[0]]) if len(hits) else None


def rank_test(mine: Sequence[float], random: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``mine`` is larger than ``random``."""
    if len(mine) < 2 or len(random) < 2:
        return float("nan")
    return float(stats.mannwhitneyu(mine, random, alternative="greater").pvalue)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(med), float(q3)
