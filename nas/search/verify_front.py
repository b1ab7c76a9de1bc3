"""``search.verify_front``: the front of a search, measured on the device.

A search that predicts latency (cheap: no device in the loop) ends by sending only its front's
files to the device's latency agent (a ``remote`` profile) and writing ``front_verified.csv``:
each front model's predicted latency and band beside its measured median and 90th percentile,
the ratio, and whether the measurement fell inside the predicted band.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nas.core.errors import UserError
from nas.hardware.pricing import measure_file
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search.record import CandidateResult
from nas.search.report import write_csv

log = logging.getLogger(__name__)
FILE = "front_verified.csv"


def check_verify_profile(name: str | None) -> HardwareProfile | None:
    """The remote profile ``search.verify_front`` names, checked before any trial."""
    if name is None:
        return None
    profile = load_profile(name)
    if profile.kind != "remote":
        raise UserError(f"search.verify_front: {name!r} is a {profile.kind} profile; allowed: a remote profile "
                        "(kind: remote, the device's latency agent), which measures the front on the device")
    return profile


def _number(value: object) -> float | None:
    """A CSV cell as a number; None for an empty one (NaN)."""
    if not isinstance(value, (int, float)) or value != value:  # noqa: PLR0124 - NaN is not equal to itself
        return None
    return float(value)


def _file_for(record: CandidateResult, runtime: str) -> str | None:
    """The trial's file the device's runtime runs: its primary TFLite file (else any) for LiteRT,
    its ONNX file for onnxruntime."""
    if runtime != "litert":
        return record.onnx_path
    tflite = [str(f["path"]) for f in record.artifacts.values() if str(f.get("path", "")).endswith(".tflite")]
    primary = record.artifact if record.artifact and record.artifact.endswith(".tflite") else None
    return primary or (tflite[0] if tflite else None)


def verify_front(run_dir: Path, front: pd.DataFrame, profile: HardwareProfile,
                 records: Mapping[int, CandidateResult]) -> pd.DataFrame:
    """Measure every searched front model on ``profile``'s device (the file its runtime runs);
    write and return the table. ``records``: the search's trials by number."""
    assert profile.remote is not None
    rows = []
    for row in front[front["source"] == "search"].to_dict("records"):
        record = records[int(row["trial"])]
        rel = _file_for(record, profile.remote.runtime)
        if rel is None:
            raise UserError(f"search.verify_front: trial {row['trial']} has no file {profile.remote.runtime} runs; "
                            "allowed: a remote profile whose runtime runs the search's artifacts")
        measured = measure_file(profile, (run_dir / rel).read_bytes(), (1, 1, 1, 1))  # the agent reads the shape
        lo, hi = _number(row.get("latency_band_lo")), _number(row.get("latency_band_hi"))
        predicted = float(row["latency_ms"])
        rows.append({"trial": row["trial"], "arch": row["arch"], "file": rel, "latency_kind": row["latency_kind"],
                     "latency_ms": predicted, "latency_band_lo": lo, "latency_band_hi": hi,
                     "measured_ms": measured.median_ms, "measured_p90_ms": measured.p90_ms,
                     "measured_over_search": measured.median_ms / predicted,
                     "within_band": lo <= measured.median_ms <= hi if lo is not None and hi is not None else None,
                     "measured_how": measured.describe()})
        log.info("front trial %s on %s: %.3f ms (search said %.3f ms)", row["trial"], profile.tag,
                 measured.median_ms, predicted)
    table = pd.DataFrame(rows)
    write_csv(run_dir / FILE, table)
    return table


def summary(table: pd.DataFrame, profile: HardwareProfile) -> str:
    """One line: how the front's latencies held on the device."""
    if table.empty:
        return f"front verified on {profile.tag}: no front model to measure"
    ratios = table["measured_over_search"].to_numpy(float)
    banded = table["within_band"].dropna()
    band = f"; {int(banded.sum())} of {len(banded)} inside the predicted band" if len(banded) else ""
    return (f"front verified on {profile.tag}: {len(table)} models, measured / search latency median "
            f"{np.median(ratios):.2f} (range {ratios.min():.2f}-{ratios.max():.2f}){band}; table: {FILE}")
