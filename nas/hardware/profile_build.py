"""``hwnas profile build``: measure this machine with onnxruntime so that ``hwnas profile
calibrate`` can fit a latency model of it.

It times a designed set of small networks (one stage of each block type over a range of widths,
resolutions, kernels, expansions and groups, plus multi-stage networks that put blocks in
context), each exported to ONNX and run at every requested precision; it also measures the
machine's peak multiply-add rate per precision (a large 1x1 convolution), its memory bandwidth
(a large elementwise add) and whether the runtime computes in a channel-blocked layout, and
with how many channels per block. Everything goes to one JSON measurement file together with
the conditions (runtime version, threads, repetitions, precisions, CPU, date).
"""
from __future__ import annotations

import datetime
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import optuna
import torch
from torch import nn

from compress.quantize import convert_fp16, quantize_int8_static
from nas.core.config import SpaceConfig, StageConfig
from nas.core.errors import UserError
from nas.core.vocab import PRECISIONS
from nas.deploy.export import OPSET, DeployInfo, to_onnx
from nas.deploy.host_latency import LatencyMeasurement
from nas.deploy.remote import RemoteAgent
from nas.deploy.host_latency import measure_latency, session
from nas.space.arch import ArchSpec
from nas.space.builder import build
from nas.space.sampler import SearchSpace
from nas.space.kinds import block_types

log = logging.getLogger(__name__)

FORMAT = "hwnas-measurements/1"
# times one ONNX file: (model, input shape, threads, warmup, repeats) -> its measurement
Timer = Callable[[bytes, tuple[int, ...], int, int, int], LatencyMeasurement]


def local_timer(model: bytes, shape: tuple[int, ...], threads: int, warmup: int, repeats: int) -> LatencyMeasurement:
    """onnxruntime in this process, on this machine."""
    return measure_latency(model, shape, threads=threads, warmup=warmup, repeats=repeats)


def agent_timer(agent: RemoteAgent) -> Timer:
    """The device's agent times each file (``hwnas device serve`` on the device; its onnxruntime)."""
    def timer(model: bytes, shape: tuple[int, ...], threads: int, warmup: int, repeats: int) -> LatencyMeasurement:
        return agent.measure(model, threads=threads, warmup=warmup, repeats=repeats)
    return timer
DEFAULT_PRECISIONS = ("fp32", "int8")


def _single_stage_space(rng: np.random.Generator) -> SpaceConfig:
    block = str(rng.choice(block_types()))
    stage = StageConfig(chs=int(rng.choice([16, 24, 32, 48, 64, 96, 128, 160])), stride=int(rng.choice([1, 2])),
                        depths=(int(rng.choice([1, 2])),), block_types=(block,))
    return SpaceConfig(stages=(stage,), resolutions=(int(rng.choice([8, 12, 16, 24, 32, 48, 56])),),
                       widths=(0.25, 0.5, 0.75, 1.0, 1.25), stem_chs=int(rng.choice([8, 16, 24, 32])),
                       stem_stride=int(rng.choice([1, 2])), head_chs=int(rng.choice([64, 128, 256])),
                       block_types=(block,), groups=(1, 2, 4, 8), se=(False, True), hswish=(False, True))


def _multi_stage_space(rng: np.random.Generator) -> SpaceConfig:
    stages = (StageConfig(chs=16, depths=(1,)), StageConfig(chs=32, stride=2, depths=(1, 2)),
              StageConfig(chs=64, stride=2, depths=(1, 2, 3)), StageConfig(chs=96, depths=(1, 2)))
    return SpaceConfig(stages=stages, resolutions=(16, 20, 24, 28, 32, 40), widths=(0.25, 0.5, 0.75, 1.0, 1.25),
                       stem_chs=16, stem_stride=int(rng.choice([1, 2])), head_chs=256, block_types=block_types(),
                       groups=(1, 2, 4, 8), se=(False, True), hswish=(False, True))


def designed_architectures(n: int, *, seed: int = 0, in_chs: tuple[int, ...] = (1, 3),
                           space: SpaceConfig | None = None) -> list[ArchSpec]:
    """``n`` seeded networks with distinct architecture strings: by default two thirds
    single-stage (one block type in isolation) and one third multi-stage; with ``space``, random
    networks of that search space (a model calibrated for the space a search will explore)."""
    rng = np.random.default_rng(seed)
    seen: dict[str, ArchSpec] = {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one "study created" line per network otherwise
    attempts = 0
    while len(seen) < n and attempts < 20 * n:
        attempts += 1
        if space is not None:
            cfg = space
        else:
            cfg = _single_stage_space(rng) if rng.random() < 2 / 3 else _multi_stage_space(rng)
        # One throw-away study per network: the spaces differ, and Optuna keeps one per study.
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=int(rng.integers(2**31)))).ask()
        spec = SearchSpace(cfg, in_chs=int(rng.choice(in_chs)), num_classes=10).sample(trial)
        seen.setdefault(spec.format(), spec)
    optuna.logging.set_verbosity(verbosity)
    return list(seen.values())


def export_for_timing(module: nn.Module, input_shape: tuple[int, ...], arch: str = "") -> bytes:
    n, c, h, w = input_shape
    info = DeployInfo(arch=arch, input_shape=(n, c, h, w), resize="none", mean=(0.0,) * c, std=(1.0,) * c,
                      channel_order="any", classes=("0",))
    with torch.no_grad():
        return to_onnx(module.eval(), info)


def at_precision(model: bytes, input_shape: tuple[int, ...], precision: str) -> bytes:
    """The model at ``precision``: int8 quantized statically on random inputs (timing does not
    depend on the ranges), fp16 converted."""
    if precision == "fp32":
        return model

    if precision == "int8":
        calibration = np.random.default_rng(0).standard_normal((4, *input_shape[1:])).astype(np.float32)
        return quantize_int8_static(model, calibration)
    if precision == "fp16":
        return convert_fp16(model)
    raise UserError(f"precision {precision!r} cannot be measured; allowed: {', '.join(PRECISIONS)}")


def measure_peak_macs(precision: str, *, threads: int, repeats: int, timer: Timer = local_timer) -> tuple[float, str]:
    """Multiply-adds per second of a large 1x1 convolution (256 -> 256 channels at 28x28)."""
    conv = nn.Sequential(nn.Conv2d(256, 256, 1, bias=False))
    shape = (1, 256, 28, 28)
    model = at_precision(export_for_timing(conv, shape), shape, precision)
    ms = timer(model, shape, threads, 10, repeats).median_ms
    macs = 256 * 256 * 28 * 28
    return macs / (ms * 1e-3), f"1x1 conv 256->256 at 28x28 ({macs / 1e6:.1f} M MACs), median {ms:.3f} ms"


def measure_remote_bandwidth(timer: Timer, *, threads: int, repeats: int) -> tuple[float, str]:
    """GB/s of a 64 MiB fp32 input added to itself (reads 64 MiB, writes 64 MiB), timed by
    ``timer``: the agent feeds one input of its own, so the file carries no 64 MiB constant."""
    n = 16 * 1024 * 1024
    a = onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n])
    c = onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Add", ["a", "a"], ["c"])], "bw", [a], [c])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], ir_version=8)
    ms = timer(model.SerializeToString(), (n,), threads, 3, max(3, repeats // 20)).median_ms
    return 2 * 4 * n / (ms * 1e-3) / 1e9, f"64 MiB fp32 added to itself on the device (2 x 64 MiB moved), median {ms:.2f} ms"


def measure_bandwidth(*, threads: int, repeats: int) -> tuple[float, str]:
    """GB/s of an elementwise add of two 64 MiB fp32 tensors (reads two, writes one)."""
    n = 16 * 1024 * 1024
    a = onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n])
    b = onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [n])
    c = onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Add", ["a", "b"], ["c"])], "bw", [a, b], [c])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], ir_version=8)
    sess = session(model.SerializeToString(), threads=threads)
    x = np.ones(n, dtype=np.float32)
    times = []
    for _ in range(max(3, repeats // 20)):
        start = time.perf_counter()
        sess.run(None, {"a": x, "b": x})
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return 3 * 4 * n / seconds / 1e9, f"Add of two {4 * n >> 20} MiB fp32 tensors, median {seconds * 1e3:.1f} ms"


def detect_layout_block(*, threads: int) -> int:
    """Channels per block of onnxruntime's blocked (NCHWc) layout on this CPU, 0 if it uses none:
    the padded output channels of a 4-channel 1x1 convolution in the optimized graph."""

    model = export_for_timing(nn.Sequential(nn.Conv2d(4, 4, 1)), (1, 4, 8, 8))
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:
        if node.domain.endswith("nchwc") and node.op_type == "Conv":
            return int(shapes[node.input[1]][0])
    return 0


def time_networks(archs: list[ArchSpec], precisions: tuple[str, ...], *, threads: int = 1, warmup: int = 10,
                  repeats: int = 200, rounds: int = 3, progress: Callable[[int, int, str], None] | None = None,
                  timer: Timer = local_timer) -> list[dict[str, Any]]:
    """Latency of each network at each precision: the rows of a measurement file.

    Every network is timed in ``rounds`` passes over the whole list, each time in a fresh session
    (median of ``repeats`` runs), and its figure is the median of its passes (``round_ms`` keeps
    them). One pass's timing carries that session's and that minute's luck: on a shared 2-core
    machine two passes over the same networks disagreed by more than 10% for about 5% of them.
    Networks are exported and quantized once, before the first pass."""
    if rounds < 1:
        raise UserError(f"rounds {rounds} not allowed; allowed: integers >= 1")
    models = []
    for spec in archs:
        shape = (1, spec.in_chs, spec.resolution, spec.resolution)
        fp32 = export_for_timing(build(spec), shape, spec.format())
        models.append((spec.format(), shape, {p: at_precision(fp32, shape, p) for p in precisions}))
    timings: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(rounds):
        for i, (arch, shape, by_precision) in enumerate(models):
            for precision, model in by_precision.items():
                latency = timer(model, shape, threads, warmup, repeats)
                timings.setdefault((arch, precision), []).append((latency.median_ms, latency.p90_ms))
            if progress:
                progress(r * len(models) + i + 1, rounds * len(models), arch)
    return [{"arch": arch, "precision": precision, "latency_ms": float(np.median([m for m, _ in t])),
             "p90_ms": float(np.median([p for _, p in t])), "round_ms": [m for m, _ in t]}
            for (arch, precision), t in timings.items()]


def _machine(agent: RemoteAgent | None, *, threads: int, repeats: int) -> dict[str, Any]:
    """What a measurement file says of the machine measured: this one, or the agent's device
    (its onnxruntime, CPU and platform; its bandwidth through the agent; no blocked layout
    assumed: onnxruntime's NCHWc is an x86 feature and cannot be read back through the agent)."""
    if agent is None:
        gb_s, bw_how = measure_bandwidth(threads=threads, repeats=repeats)
        return {"timer": local_timer, "runtime": f"onnxruntime {ort.__version__}",
                "cpu": platform.processor() or platform.machine(), "platform": platform.platform(),
                "bandwidth": {"value": gb_s, "how": bw_how}, "layout_block": detect_layout_block(threads=threads)}
    info = agent.info()
    runtime = info.get("runtimes", {}).get("onnxruntime")
    if runtime is None:
        raise UserError(f"the device agent at {agent.url} has no onnxruntime ({', '.join(info.get('runtimes', {}))}); "
                        "allowed: an agent whose device has onnxruntime installed (pip install onnxruntime)")
    timer = agent_timer(agent)
    gb_s, bw_how = measure_remote_bandwidth(timer, threads=threads, repeats=repeats)
    device = info.get("conditions", {})
    return {"timer": timer, "runtime": str(runtime), "cpu": str(device.get("machine", "?")),
            "platform": f"{device.get('system', '?')} on {device.get('host', '?')}, through the hwnas agent at "
                        f"{agent.url}", "bandwidth": {"value": gb_s, "how": bw_how}, "layout_block": 0}


def build_measurements(name: str, *, n: int = 300, seed: int = 0, precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
                       threads: int = 1, warmup: int = 10, repeats: int = 200, rounds: int = 3,
                       space: SpaceConfig | None = None,
                       space_name: str = "", in_chs: tuple[int, ...] = (1, 3),
                       progress: Callable[[int, int, str], None] | None = None,
                       rows: list[dict[str, Any]] | None = None, agent: RemoteAgent | None = None) -> dict[str, Any]:
    """Measure this machine, or with ``agent`` the device it runs on; returns the content of a
    measurement file (see module docstring). ``space`` replaces the designed set by random
    networks of a search space (``space_name`` says which in the conditions; ``in_chs`` are its
    input channels). ``rows`` given (from :func:`time_networks` on these networks, e.g. timed
    interleaved with others) are used as they are instead of timing the networks again."""
    for precision in precisions:
        if precision not in PRECISIONS:
            raise UserError(f"precision {precision!r} cannot be measured; allowed: {', '.join(PRECISIONS)}")
    archs = designed_architectures(n, seed=seed, space=space, in_chs=in_chs)
    machine = _machine(agent, threads=threads, repeats=repeats)
    peaks = {p: dict(zip(("macs_per_s", "how"), measure_peak_macs(p, threads=threads, repeats=repeats,
                                                                  timer=machine["timer"]))) for p in precisions}
    if rows is None:
        rows = time_networks(archs, precisions, threads=threads, warmup=warmup, repeats=repeats, rounds=rounds,
                             progress=progress, timer=machine["timer"])
    elif {r["arch"] for r in rows} != {a.format() for a in archs}:
        raise ValueError("rows must time exactly the networks of this designed set")
    return {
        "format": FORMAT, "name": name,
        "conditions": {
            "runtime": machine["runtime"], "execution_provider": "CPUExecutionProvider",
            "graph_optimization": "ORT_ENABLE_ALL (default)", "threads": threads, "batch": 1, "warmup": warmup,
            "repeats": repeats, "rounds": rounds, "precisions": list(precisions),
            "statistic": "median over rounds (passes over the whole set, a fresh session each) of the median of "
                         "repeats",
            "int8": "static QDQ, per-channel weights (compress.quantize)", "cpu": machine["cpu"],
            "platform": machine["platform"], "date": datetime.date.today().isoformat(),
            "designed_set": (f"{len(archs)} networks, seed {seed}, "
                             + (f"random networks of search space {space_name}" if space is not None else
                                "single- and multi-stage networks of every block type")
                             + " (nas.hardware.profile_build.designed_architectures)")},
        "peak_macs_per_s": peaks,
        "bandwidth_gb_s": machine["bandwidth"],
        "layout_block": machine["layout_block"],
        "measurements": rows,
    }


def load_measurements(path: Path) -> dict[str, Any]:
    """A measurement file written by :func:`build_measurements`, checked."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read measurement file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a measurement file of format {FORMAT} (written by hwnas profile build)")
    for key in ("measurements", "peak_macs_per_s", "bandwidth_gb_s", "conditions"):
        if key not in data:
            raise UserError(f"{path} lacks {key!r}; rewrite it with hwnas profile build")
    return data


def profile_skeleton(data: dict[str, Any]) -> dict[str, Any]:
    """An uncalibrated predicted profile (version 1) of the measured machine, with the measured
    peaks and bandwidth as its device section; ``calibrate`` adds the fitted model."""
    cond = data["conditions"]
    assert isinstance(cond, dict)
    where = f"measured by hwnas profile build on {cond['date']} ({cond['runtime']}, {cond['threads']} thread(s))"
    peaks = data["peak_macs_per_s"]
    bandwidth = data["bandwidth_gb_s"]
    assert isinstance(peaks, dict) and isinstance(bandwidth, dict)
    return {
        "name": data["name"], "version": "1", "kind": "predicted",
        "description": f"{cond['cpu']} ({cond['platform']}), onnxruntime CPU, {cond['threads']} thread(s), batch 1",
        "provenance": (f"Per-layer model (nas.hardware.latency_model) of this machine running onnxruntime: peak and "
                       f"bandwidth {where}; model fitted by hwnas profile calibrate to the same build's "
                       f"measurements of {cond['designed_set']}."),
        "device": {
            "macs_per_s": {p: {"value": float(v["macs_per_s"]), "source": f"{where}: {v['how']}"}
                           for p, v in peaks.items()},
            "bandwidth_gb_s": {"value": float(bandwidth["value"]), "source": f"{where}: {bandwidth['how']}"},
        },
        "memory": {"capacity_mb": None, "provenance": "host RAM; set a capacity to budget memory against it"},
    }
