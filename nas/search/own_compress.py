"""Compress a user's own model for a device: the Python API behind ``hwnas compress FILE``.

    result = compress_model(my_module, splits, recipe, input_shape=(3, 32, 32), profile="raspberry-pi4")
    result.report["files"]["model_int8.onnx"]["test_accuracy"]

The recipe's steps run on the module (pruning through the dependency graph, distilled
fine-tuning), then each file is exported with the ``hwnas.preprocess`` deploy contract and
measured on itself: accuracy on the validation and test splits by the runtime that runs it,
latency on this host side by side with the original's file, and the latency predicted on the
target profile (with its band, labelled predicted). An ONNX file without its PyTorch source can be
quantized, not pruned.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import onnx
import torch
from torch import nn

from compress.graph_prune import GraphPruned
from compress.own_steps import prune_own, quantize_own
from compress.recipe import Recipe, tflite_int8_options
from nas.core.errors import UserError
from nas.data.splits import Splits
from nas.deploy.artifacts import ARTIFACT_KINDS, tflite_file
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import measure_latency
from nas.deploy.own_model import OwnModel, from_module
from nas.hardware.own_pricing import price_own
from nas.hardware.pricing import Price
from nas.hardware.profiles import HardwareProfile, load_profile

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite")


@dataclass
class CompressedModel:
    """The files of a compressed model (name -> bytes), the report of their measured figures, and
    the compressed float module (None for an ONNX file)."""

    files: dict[str, bytes]
    report: dict[str, Any]
    module: nn.Module | None = None
    pruned: GraphPruned | None = None
    notes: list[str] = field(default_factory=list)


def deploy_info(own: OwnModel, splits: Splits, precision: str = "fp32") -> DeployInfo:
    _, _, h, _ = own.input_shape
    p = splits.preprocess
    return DeployInfo(arch=own.name, input_shape=(own.input_shape[0], own.input_shape[1], h, h),
                      resize=p.describe_resize(h), mean=p.mean, std=p.std, channel_order=p.channel_order,
                      classes=splits.classes, precision=precision, source_size=p.source_size)


def check_data(own: OwnModel, splits: Splits) -> None:
    """The data must feed the model: square inputs with the dataset's channels."""
    _, c, h, w = own.input_shape
    if h != w:
        raise UserError(f"the model's input is {h}x{w}; hwnas's data pipeline feeds square images (give "
                        "--input-shape C,S,S)")
    if splits.x_train.shape[-1] != c:
        raise UserError(f"the model takes {c} input channels; the data has {splits.x_train.shape[-1]}")


def _prediction(own: OwnModel, profile: HardwareProfile, precision: str) -> dict[str, Any]:
    p: Price = price_own(own, profile, precision=precision)
    return {"latency_ms": p.latency_ms, "latency_kind": p.latency_kind, "profile": p.profile.tag,
            "precision": precision, "latency_band_ms": None if p.band_ms is None else list(p.band_ms),
            "latency_how": p.latency_how, "macs": p.costs.macs, "parameters": p.costs.params,
            "weight_mb": p.costs.weight_mb, "peak_memory_mb": p.costs.memory_mb}


def _onnx_figures(data: bytes, own: OwnModel, splits: Splits, threads: int) -> dict[str, Any]:
    res = own.input_shape[-1]
    acc = {s: onnx_accuracy(data, x, y, preprocess=splits.preprocess, resolution=res, threads=threads)
           for s, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test))}
    return {"bytes": len(data), "runtime": "onnxruntime", "val_accuracy": acc["val"], "test_accuracy": acc["test"]}


def _latencies(files: dict[str, bytes], shape: tuple[int, ...], threads: int, rounds: int = 3,
               repeats: int = 100) -> dict[str, dict[str, Any]]:
    """Host latency of every ONNX file, measured side by side (alternating rounds; medians)."""
    times: dict[str, list[float]] = {n: [] for n in files}
    for _ in range(rounds):
        for name, data in files.items():
            times[name].append(measure_latency(data, shape, threads=threads, repeats=repeats).median_ms)
    how = (f"measured on this host with onnxruntime CPU, batch 1, {threads} thread(s): median of {rounds} alternating "
           f"rounds of {repeats} runs, side by side with the other files")
    return {n: {"host_latency_ms": sorted(t)[len(t) // 2], "host_latency_how": how} for n, t in times.items()}


def _float_steps(own: OwnModel, recipe: Recipe, splits: Splits, profile: HardwareProfile,
                 seed: int) -> tuple[OwnModel, GraphPruned | None]:
    """Pruning (and its fine-tuning) on the module; the model itself when the recipe does not prune."""
    if recipe.sparsity or recipe.lowrank or recipe.share:
        raise UserError("for your own model a recipe takes prune and quantize (sparsity, lowrank and share apply "
                        "to hwnas's own networks)")
    if recipe.prune is None:
        return own, None
    if own.module is None:
        raise UserError(f"{own.name}: pruning needs the PyTorch model (FILE.py:CALLABLE with --weights); an ONNX "
                        "file can be quantized (recipe quantize only)")
    target = profile.kind == "predicted"
    precision = recipe.precision

    def latency(m: nn.Module) -> float:
        own_m = from_module(m, own.input_shape, own.name)
        ms = price_own(own_m, profile, precision=precision).latency_ms if target else None
        if ms is None:
            raise UserError(f"profile {profile.tag} cannot predict this model's latency at {precision}, so "
                            "prune.target_latency_ms cannot be met on it")
        return ms

    module, pruned = prune_own(own.module, recipe.prune, splits, own.input_shape, seed=seed, latency=latency)
    if not pruned.met:
        log.warning("pruning stopped at %s %.4g, above the target %.4g", pruned.cost, pruned.after, pruned.target)
    return from_module(module, own.input_shape, own.name), pruned


def compressed_files(own: OwnModel, splits: Splits, recipe: Recipe, profile: HardwareProfile, *,
                     seed: int = 0) -> tuple[OwnModel, dict[str, bytes], GraphPruned | None]:
    """The recipe applied: the compressed model, its ONNX files (``model.onnx`` fp32, and
    ``model_<precision>.onnx`` when the recipe quantizes) and what pruning did."""
    check_data(own, splits)
    work, pruned = _float_steps(own, recipe, splits, profile, seed)
    files = {"model.onnx": _export(work, splits, "fp32")}
    if recipe.quantize is not None:
        files[f"model_{recipe.precision}.onnx"] = quantize_own(files["model.onnx"], recipe.quantize, splits,
                                                               own.input_shape[-1], seed=seed)
    return work, files, pruned


def file_figures(data: bytes, model: OwnModel, splits: Splits, profile: HardwareProfile,
                 precision: str, threads: int) -> dict[str, Any]:
    """Accuracy measured on an ONNX file, and the latency predicted for it on ``profile``."""
    return _onnx_figures(data, model, splits, threads) | {"predicted": _prediction(model, profile, precision)}


def compress_model(model: OwnModel | nn.Module, splits: Splits, recipe: Recipe, *,
                   input_shape: tuple[int, ...] | None = None, profile: HardwareProfile | str = "cpu",
                   formats: tuple[str, ...] = ("onnx",), seed: int = 0, threads: int = 1) -> CompressedModel:
    """Compress ``model`` (left untouched) with ``recipe`` for ``profile`` and measure every file."""
    own = model if isinstance(model, OwnModel) else from_module(model, input_shape or (), "model")
    profile = load_profile(profile) if isinstance(profile, str) else profile
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"formats {list(formats)} not allowed; allowed: one or more of {', '.join(FORMATS)}")
    if "tflite" in formats and own.module is None:
        raise UserError("a TFLite file is converted from the PyTorch model; an ONNX file gives ONNX files only")
    work, made, pruned = compressed_files(own, splits, recipe, profile, seed=seed)
    precision = recipe.precision
    files = {"original.onnx": _export(own, splits, "fp32"), **made}
    figures = {n: file_figures(d, own if n == "original.onnx" else work, splits, profile,
                               precision if n.startswith(f"model_{precision}") else "fp32", threads)
               for n, d in files.items()}
    for n, lat in _latencies(files, own.input_shape, threads).items():
        figures[n] |= lat
    if "tflite" in formats:
        assert work.module is not None
        _tflite(work, splits, recipe, seed, threads, files, figures)
        figures[ARTIFACT_KINDS["tflite-int8"].filename]["predicted"] = _prediction(work, profile, "int8")
    report = _report(own, recipe, profile, pruned, figures, precision)
    return CompressedModel(files, report, work.module, pruned)


def _export(own: OwnModel, splits: Splits, precision: str) -> bytes:
    if own.module is None:  # an ONNX file: its graph, with the deploy contract added
        return _with_contract(own.onnx_bytes, deploy_info(own, splits, precision))
    # not under no_grad: nn.MultiheadAttention's inference fast path (one fused op) has no ONNX export
    return to_onnx(copy.deepcopy(own.module).eval(), deploy_info(own, splits, precision))


def _with_contract(onnx_bytes: bytes, info: DeployInfo) -> bytes:
    proto = onnx.load_from_string(onnx_bytes)
    props = {p.key: p.value for p in proto.metadata_props} | info.metadata()
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    return bytes(proto.SerializeToString())


def _tflite(work: OwnModel, splits: Splits, recipe: Recipe, seed: int, threads: int, files: dict[str, bytes],
            figures: dict[str, dict[str, Any]]) -> None:
    """The int8 TFLite file (full-integer, for the Edge TPU and the Pi), measured in LiteRT."""
    assert work.module is not None
    kind = ARTIFACT_KINDS["tflite-int8"]
    data, measured = tflite_file(work.module, deploy_info(work, splits, "int8"), kind, splits,
                                 resolution=work.input_shape[-1], seed=seed, rel_path=kind.filename,
                                 int8=tflite_int8_options(recipe), threads=threads)
    files[kind.filename] = data
    figures[kind.filename] = measured.to_json()


def _report(own: OwnModel, recipe: Recipe, profile: HardwareProfile, pruned: GraphPruned | None,
            figures: dict[str, dict[str, Any]], precision: str) -> dict[str, Any]:
    best = f"model_{precision}.onnx" if f"model_{precision}.onnx" in figures else "model.onnx"
    base, out = figures["original.onnx"], figures[best]
    return {
        "model": own.name, "source": own.source, "input_shape": list(own.input_shape), "recipe": recipe.to_json(),
        "profile": profile.tag, "compressed_file": best,
        "reference_accuracy": base["test_accuracy"], "compressed_accuracy": out["test_accuracy"],
        "speedup": base["host_latency_ms"] / out["host_latency_ms"],
        "size_ratio": base["bytes"] / out["bytes"],
        "prune": None if pruned is None else {
            "criterion": pruned.criterion, "cost": pruned.cost, "before": pruned.before, "after": pruned.after,
            "target": pruned.target, "met": pruned.met, "steps": pruned.steps, "channels": pruned.channels,
            "left_dense": pruned.left_dense},
        "files": figures,
        "notes": ["accuracy: top-1 on the test split, measured on each file by its runtime; speedup and size_ratio: "
                  "original.onnx over compressed_file, host latency measured side by side on this host; "
                  "'predicted' figures are the target profile's per-layer model, not measurements"],
    }
