"""The ranking of multi-objective asynchronous successive halving (MO-ASHA; Schmucker et al.
2021, as in Syne Tune): the trials at one rung are ordered by non-dominated sorting, ties within
a front broken by crowding distance (NSGA-II's order), and a trial continues when it is in the
best ``ceil(n / eta)`` of the ``n`` trials at the rung. No Optuna here: :mod:`nas.search.rungs`
reads the study and writes the decision.

>>> keeps(0, [(-0.9, 1.0), (-0.5, 2.0), (-0.4, 3.0), (-0.3, 4.0)], eta=3)
True
>>> keeps(3, [(-0.9, 1.0), (-0.5, 2.0), (-0.4, 3.0), (-0.3, 4.0)], eta=3)
False
"""
from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, ...]  # every value minimised (accuracy negated)


def dominates(a: Point, b: Point) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Point]) -> list[list[int]]:
    """Indices of ``points`` by non-dominated front, the first front first."""
    left = list(range(len(points)))
    out = []
    while left:
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)]
        out.append(front)
        left = [i for i in left if i not in front]
    return out


def crowding(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index in ``front`` (its extremes: infinite)."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for axis in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][axis])
        low, high = points[ordered[0]][axis], points[ordered[-1]][axis]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[here] += (points[after][axis] - points[before][axis]) / (high - low)
    return distance


def order(points: Sequence[Point]) -> list[int]:
    """All indices, best first: by front, then by larger crowding distance, then by index (the
    earlier trial first, so a decision never depends on chance)."""
    out = []
    for front in fronts(points):
        distance = crowding(points, front)
        out.extend(sorted(front, key=lambda i: (-distance[i], i)))
    return out


def kept(n: int, eta: int) -> int:
    """How many of ``n`` trials at a rung continue: the best ``ceil(n / eta)``."""
    return max(1, math.ceil(n / eta))


def keeps(index: int, points: Sequence[Point], *, eta: int) -> bool:
    """Whether ``points[index]`` is in the best ``ceil(len(points) / eta)``."""
    return order(points).index(index) < kept(len(points), eta)


class EarlyStopped(Exception):
    """Raised at a rung to stop a candidate: ``rung`` is the epoch, ``reason`` one line for the record."""

    def __init__(self, rung: int, reason: str) -> None:
        super().__init__(reason)
        self.rung, self.reason = rung, reason
