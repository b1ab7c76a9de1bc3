"""Latency measured on this host with onnxruntime: batch 1, warm-up, median of repeated runs."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort


@dataclass(frozen=True)
class LatencyMeasurement:
    """A measured latency and the conditions it was measured under."""

    median_ms: float
    p90_ms: float
    threads: int
    repeats: int
    warmup: int
    runtime: str
    where: str = "this host"  # or the device an agent measured it on (nas.deploy.remote)

    def describe(self) -> str:
        return (f"measured on {self.where} with {self.runtime} CPU, batch 1, {self.threads} thread(s), "
                f"median of {self.repeats} runs after {self.warmup} warm-up")


def session(model: str | Path | bytes, *, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with a fixed thread count (latency is meaningless without one)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def measure_latency(model: str | Path | bytes, input_shape: tuple[int, ...], *, threads: int = 1,
                    warmup: int = 10, repeats: int = 50, seed: int = 0) -> LatencyMeasurement:
    """Median wall time of one inference of ``model`` on a random input of ``input_shape``."""
    sess = session(model, threads=threads)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(seed).standard_normal(input_shape, dtype=np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return LatencyMeasurement(median_ms=statistics.median(times), p90_ms=times[int(0.9 * (len(times) - 1))],
                              threads=threads, repeats=repeats, warmup=warmup,
                              runtime=f"onnxruntime {ort.__version__}")
