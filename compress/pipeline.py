"""Apply a :class:`~compress.recipe.Recipe` to a trained network and report what the exported file
does: test accuracy (onnxruntime), file size, MACs and host latency, before and after, with the
latencies measured side by side in one process."""
from __future__ import annotations

import copy
import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from compress.distill import fine_tune
from compress.prune import parameter_count, prune, prune_to_budget, slimming_penalty
from compress.quantize import quantize
from compress.recipe import Recipe
from nas.space.arch import ArchSpec
from nas.cost.costs import count_costs, count_macs
from nas.data.splits import Splits, to_tensor
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import measure_latency

log = logging.getLogger(__name__)


@dataclass
class Compressed:
    onnx: bytes
    module: nn.Module  # the pruned float network (before quantization)
    report: dict[str, object]


def _taylor_batches(splits: Splits, resolution: int, n: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = rng.choice(len(splits.y_train), min(batch, len(splits.y_train)), replace=False)
        out.append((to_tensor(splits.x_train[idx], splits.preprocess, resolution),
                    torch.from_numpy(splits.y_train[idx]).long()))
    return out


def _prune(model: nn.Module, spec: ArchSpec, recipe: Recipe, splits: Splits, seed: int) -> dict[str, object]:
    cfg = recipe.prune
    assert cfg is not None
    teacher = copy.deepcopy(model).eval() if cfg.distill else None
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    x = torch.zeros(shape)
    base_macs = count_macs(model, x)
    budget: tuple[float, Callable[[nn.Module], float], float] | None = None  # (share, cost, cost before)
    if cfg.target_macs is not None:
        budget = (cfg.target_macs, lambda m: count_macs(m, x), base_macs)
    elif cfg.target_params is not None:
        budget = (cfg.target_params, parameter_count, parameter_count(model))
    if cfg.slimming_iters:
        fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=cfg.slimming_iters, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed + 97,
                  extra_loss=slimming_penalty(cfg.slimming))
    kept: dict[str, tuple[int, int]] = {}
    dense: list[str] = []
    for step in range(1, cfg.steps + 1):
        batches = (_taylor_batches(splits, spec.resolution, cfg.taylor_batches, cfg.batch_size, seed + step)
                   if cfg.criterion == "taylor" else None)
        if budget is not None:
            share, cost, start = budget
            goal = start * share ** (step / cfg.steps)
            result = prune_to_budget(model, min(1.0, goal / cost(model)), cost, criterion=cfg.criterion,
                                     scope=cfg.scope, round_to=cfg.round_to, taylor_batches=batches,
                                     streams=cfg.streams)
        else:
            assert cfg.ratio is not None
            step_ratio = 1 - (1 - cfg.ratio) ** (1 / cfg.steps)
            result = prune(model, ratio=step_ratio, criterion=cfg.criterion, scope=cfg.scope, round_to=cfg.round_to,
                           taylor_batches=batches, streams=cfg.streams)
        for name, (before, after) in result.kept.items():
            kept[name] = (kept.get(name, (before, before))[0], after)
        dense = result.dense
        distill = cfg.distill
        fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=cfg.finetune_iters, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed + step,
                  teacher=teacher, temperature=distill.temperature if distill else 4.0,
                  alpha=distill.alpha if distill else 0.0)
        log.info("prune step %d/%d: %.1f%% of MACs left", step, cfg.steps,
                 100 * count_macs(model, torch.zeros(shape)) / base_macs)
    return {"kept_channels": {k: list(v) for k, v in kept.items()}, "left_dense": dense}


def _sparsify(model: nn.Module, spec: ArchSpec, cfg: object, splits: Splits, seed: int,
              teacher: nn.Module) -> dict[str, object]:
    from compress.sparsity import (
        apply_masks,
        magnitude_masks,
        polynomial_sparsity,
        sparsity_of,
    )

    ramp = max(1, int(0.75 * cfg.finetune_iters))  # type: ignore[attr-defined]
    masks = magnitude_masks(model, cfg.initial, scope=cfg.scope)  # type: ignore[attr-defined]
    apply_masks(model, masks)

    def after_step(m: nn.Module, step: int) -> None:
        nonlocal masks
        if step < ramp and step % cfg.mask_every == 0:  # type: ignore[attr-defined]
            masks = magnitude_masks(m, polynomial_sparsity(step, ramp, initial=cfg.initial, final=cfg.final),  # type: ignore[attr-defined]
                                    scope=cfg.scope)  # type: ignore[attr-defined]
        apply_masks(m, masks)

    distill = cfg.distill  # type: ignore[attr-defined]
    fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
              iterations=cfg.finetune_iters, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed + 101,  # type: ignore[attr-defined]
              teacher=copy.deepcopy(teacher).eval() if distill else None,
              temperature=distill.temperature if distill else 4.0, alpha=distill.alpha if distill else 0.0,
              after_step=after_step)
    apply_masks(model, magnitude_masks(model, cfg.final, scope=cfg.scope))  # type: ignore[attr-defined]
    return {"sparsity": round(sparsity_of(model), 4),
            "note": "zeros shrink the gzip-compressed file; onnxruntime runs them dense, so latency is unchanged"}


def apply_recipe(model: nn.Module, spec: ArchSpec, recipe: Recipe, splits: Splits, *,
                 seed: int = 0) -> tuple[bytes, nn.Module, dict[str, object]]:
    """The compressed ONNX file, the pruned float module and what pruning kept; ``model`` is left
    untouched."""
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    work = copy.deepcopy(model).eval()
    details: dict[str, object] = {}
    if recipe.prune is not None:
        details["prune"] = _prune(work, spec, recipe, splits, seed)
    if recipe.sparsity is not None:
        details["sparsity"] = _sparsify(work, spec, recipe.sparsity, splits, seed, teacher=model)
    if recipe.lowrank is not None:
        from compress.lowrank import factorize

        lr = recipe.lowrank
        factored = factorize(work, lr.rank_ratio)
        fine_tune(work, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=lr.finetune_iters, batch_size=lr.batch_size, lr=lr.lr, seed=seed + 7)
        details["lowrank"] = {"factored_layers": {k: list(v) for k, v in factored.items()}}
    if recipe.share is not None:
        from compress.sharing import encode, share_weights
        from nas.space.builder import fuse_bn

        fuse_bn(work)  # share what is deployed: BN folding rescales every output channel
        layers = share_weights(work, recipe.share.bits, recipe.share.layer_bits)
        details["share"] = {"encoded_bytes": len(encode(work, layers)), "layers": len(layers),
                            "note": "the ONNX file stores the centroid values in fp32; encoded_bytes is the size of "
                                    "the Huffman-coded file (compress.sharing.encode)"}
    if recipe.quantize is not None and recipe.quantize.qat_iters:
        from compress.qat import prepare, strip

        q = recipe.quantize
        prepare(work, per_channel=q.per_channel)
        fine_tune(work, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=q.qat_iters, lr=q.qat_lr, seed=seed + 13, teacher=copy.deepcopy(model).eval(),
                  alpha=0.5)
        strip(work)
        details["qat"] = {"iterations": q.qat_iters, "note": "QAT-trained weights; activation ranges recalibrated "
                                                             "by the static quantization that exports them"}
    if recipe.quantize is not None and recipe.quantize.weight_bits:
        from compress.lowbit import NOTE, apply_weight_bits

        low = apply_weight_bits(work, spec, recipe.quantize.weight_bits)
        details["lowbit"] = {"weight_bits": dict(recipe.quantize.weight_bits), "elements_at_4_bits": low,
                             "note": NOTE}
    with torch.no_grad():
        out = to_onnx(work, info)
    if recipe.quantize is not None:
        q = recipe.quantize
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(splits.y_train), min(q.calibration_images, len(splits.y_train)), replace=False)
        calibration = to_tensor(splits.x_train[idx], splits.preprocess, spec.resolution).numpy()
        out = quantize(out, q.mode, calibration_inputs=calibration, method=q.calibration_method,
                       per_channel=q.per_channel, fmt=q.format, activations=q.activations)
    return _stamp(out, recipe, details), work, details


def compress(model: nn.Module, spec: ArchSpec, recipe: Recipe, splits: Splits, *, seed: int = 0,
             threads: int = 1, repeats: int = 200) -> Compressed:
    """Compress a trained ``model`` (left untouched) and report before and after."""
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    base = copy.deepcopy(model).eval()
    with torch.no_grad():
        base_onnx = to_onnx(base, info)
    out, work, details = apply_recipe(model, spec, recipe, splits, seed=seed)
    x = torch.zeros(shape)
    rows = {}
    for name, blob, module in (("baseline", base_onnx, base), ("compressed", out, work)):
        rows[name] = {"test_accuracy": onnx_accuracy(blob, splits.x_test, splits.y_test, preprocess=splits.preprocess,
                                                     resolution=spec.resolution),
                      "file_bytes": len(blob), "gzip_bytes": len(gzip.compress(blob, 9)), "macs": count_macs(module, x),
                      "parameters": parameter_count(module),
                      "weight_mb": deployed_weight_mb(
                          count_costs(spec, precision="fp32" if name == "baseline" else recipe.precision,
                                      model=module).weight_mb, details if name == "compressed" else {})}
    # latency side by side, alternating, so drift on a shared machine hits both alike
    times: dict[str, list[float]] = {"baseline": [], "compressed": []}
    for _ in range(3):
        for name, blob in (("baseline", base_onnx), ("compressed", out)):
            times[name].append(measure_latency(blob, shape, threads=threads, repeats=repeats).median_ms)
    for name in rows:
        rows[name]["latency_ms"] = float(np.median(times[name]))
    b, c = rows["baseline"], rows["compressed"]
    report: dict[str, object] = {
        "arch": spec.format(), "recipe": json.loads(recipe.to_json()), "precision": recipe.precision,
        "baseline": b, "compressed": c,
        "accuracy_drop_points": 100 * (b["test_accuracy"] - c["test_accuracy"]),
        "size_ratio": b["file_bytes"] / c["file_bytes"], "macs_ratio": c["macs"] / b["macs"],
        "latency_ratio": c["latency_ms"] / b["latency_ms"], "speedup": b["latency_ms"] / c["latency_ms"],
        "latency_how": (f"onnxruntime CPU on this host, batch 1, {threads} thread(s), median of 3 alternating "
                        f"medians of {repeats} runs each"),
        **details,
    }
    if recipe.quantize is not None and recipe.quantize.mode != "fp16":
        report["macs_note"] = "MACs count multiply-adds whatever their precision; int8 ones are cheaper"
    return Compressed(onnx=out, module=work, report=report)


def deployed_weight_mb(mb: float, details: dict[str, object]) -> float:
    """Weight memory of the deployed model from ``mb`` at its precision (nas.cost.costs conventions):
    shared weights take their Huffman-coded size, 4-bit groups half a byte per weight."""
    if "share" in details:
        return details["share"]["encoded_bytes"] / 1e6  # type: ignore[index]
    if "lowbit" in details:
        mb -= 0.5 * sum(details["lowbit"]["elements_at_4_bits"].values()) / 1e6  # type: ignore[index]
    return mb


def _stamp(model: bytes, recipe: Recipe, details: dict[str, object]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model)
    props = {p.key: p.value for p in proto.metadata_props}
    props["hwnas.recipe"] = recipe.to_json()
    if "prune" in details:
        props["hwnas.pruned_channels"] = json.dumps(details["prune"]["kept_channels"])  # type: ignore[index]
        props["hwnas.arch_note"] = "hwnas.arch is the network before pruning; hidden channels per block: pruned_channels"
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    return proto.SerializeToString()
