"""Apply a :class:`~compress.recipe.Recipe` to a trained network: prune, sparsify, factorize,
share and quantize in that order, and export the result as one ONNX file, saying what each step
did (:class:`Applied`). :mod:`compress.report` measures the file before and after."""
from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
import torch
from torch import nn

from compress.distill import fine_tune
from compress.lowbit import NOTE, apply_weight_bits
from compress.lowrank import factorize
from compress.prune import parameter_count, prune, prune_to_budget, slimming_penalty
from compress.qat import qat_fine_tune
from compress.quantize import quantize
from compress.recipe import PruneConfig, QuantizeConfig, Recipe, SparsityConfig
from compress.sharing import encode, share_weights
from compress.sparsity import apply_masks, magnitude_masks, polynomial_sparsity, sparsity_of
from nas.core.errors import UserError
from nas.cost.costs import count_macs
from nas.data.splits import Splits, to_tensor
from nas.deploy.export import DeployInfo, to_onnx
from nas.space.arch import ArchSpec
from nas.space.builder import Net, fuse_bn

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # images, labels
Budget = tuple[float, Callable[[nn.Module], float], float]  # (share to keep, cost function, cost before)


@dataclass(frozen=True)
class PruneOutcome:
    kept_channels: dict[str, list[int]]  # block -> [hidden channels before, after]
    left_dense: list[str]


@dataclass(frozen=True)
class ShareOutcome:
    encoded_bytes: int  # the Huffman-coded file (compress.sharing.encode)
    layers: int
    note: str = ("the ONNX file stores the centroid values in fp32; encoded_bytes is the size of the Huffman-coded "
                 "file (compress.sharing.encode)")


@dataclass(frozen=True)
class LowBitOutcome:
    weight_bits: dict[str, int]
    elements_at_4_bits: dict[str, int]
    note: str = NOTE


@dataclass
class Applied:
    """What the steps of a recipe did (None: the step was not in the recipe)."""

    prune: PruneOutcome | None = None
    sparsity: dict[str, object] | None = None
    lowrank: dict[str, object] | None = None
    share: ShareOutcome | None = None
    qat: dict[str, object] | None = None
    lowbit: LowBitOutcome | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def kept_channels(self) -> dict[str, list[int]] | None:
        return self.prune.kept_channels if self.prune is not None else None

    @property
    def lowbit_note(self) -> str | None:
        return self.lowbit.note if self.lowbit is not None else None

    def report(self) -> dict[str, object]:
        """The steps that ran, as plain data (report.json)."""
        out: dict[str, object] = {}
        for name in ("prune", "sparsity", "lowrank", "share", "qat", "lowbit"):
            value = getattr(self, name)
            if value is not None:
                out[name] = asdict(value) if not isinstance(value, dict) else value
        return out


def deployed_weight_mb(mb: float, applied: Applied) -> float:
    """Weight memory of the deployed model from ``mb`` at its precision (nas.cost.costs conventions):
    shared weights take their Huffman-coded size, 4-bit groups half a byte per weight."""
    if applied.share is not None:
        return applied.share.encoded_bytes / 1e6
    if applied.lowbit is not None:
        mb -= 0.5 * sum(applied.lowbit.elements_at_4_bits.values()) / 1e6
    return mb


def _taylor_batches(splits: Splits, resolution: int, n: int, batch: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = rng.choice(len(splits.y_train), min(batch, len(splits.y_train)), replace=False)
        out.append((to_tensor(splits.x_train[idx], splits.preprocess, resolution),
                    torch.from_numpy(splits.y_train[idx]).long()))
    return out


def _budget(model: nn.Module, cfg: PruneConfig, x: torch.Tensor) -> Budget | None:
    """The MAC or parameter budget of ``cfg``; None for a ratio."""
    if cfg.target_macs is not None:
        return cfg.target_macs, lambda m: count_macs(m, x), count_macs(model, x)
    if cfg.target_params is not None:
        return cfg.target_params, parameter_count, parameter_count(model)
    if cfg.stage_ratios:
        raise UserError("prune.stage_ratios applies to your own models (hwnas compress FILE.py:CALLABLE); hwnas's "
                        "networks are pruned per block by their coupling")
    if cfg.target_latency_ms is not None:
        raise UserError("prune.target_latency_ms applies to your own models (hwnas compress FILE.py:CALLABLE "
                        "--profile P); for a trial of a search, set the budget in the search (search.budgets)")
    return None


def _prune(model: nn.Module, spec: ArchSpec, cfg: PruneConfig, splits: Splits, seed: int) -> PruneOutcome:
    teacher = copy.deepcopy(model).eval() if cfg.distill else None
    x = torch.zeros(1, spec.in_chs, spec.resolution, spec.resolution)
    base_macs = count_macs(model, x)
    budget = _budget(model, cfg, x)
    if cfg.slimming_iters:
        fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=cfg.slimming_iters, batch_size=cfg.batch_size, lr=cfg.lr,
                  seed=seed + 97, extra_loss=slimming_penalty(cfg.slimming))
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
            assert cfg.ratio is not None  # PruneConfig requires one of ratio, target_macs, target_params
            result = prune(model, ratio=1 - (1 - cfg.ratio) ** (1 / cfg.steps), criterion=cfg.criterion,
                           scope=cfg.scope, round_to=cfg.round_to, taylor_batches=batches, streams=cfg.streams)
        for name, (before, after) in result.kept.items():
            kept[name] = (kept.get(name, (before, before))[0], after)
        dense = result.dense
        distill = cfg.distill
        fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=cfg.finetune_iters, batch_size=cfg.batch_size, lr=cfg.lr,
                  seed=seed + step, teacher=teacher, temperature=distill.temperature if distill else 4.0,
                  alpha=distill.alpha if distill else 0.0)
        log.info("prune step %d/%d: %.1f%% of MACs left", step, cfg.steps, 100 * count_macs(model, x) / base_macs)
    return PruneOutcome({k: list(v) for k, v in kept.items()}, dense)


def _sparsify(model: nn.Module, spec: ArchSpec, cfg: SparsityConfig, splits: Splits, seed: int,
              teacher: nn.Module) -> dict[str, object]:
    ramp = max(1, int(0.75 * cfg.finetune_iters))
    masks = magnitude_masks(model, cfg.initial, scope=cfg.scope)
    apply_masks(model, masks)

    def after_step(m: nn.Module, step: int) -> None:
        nonlocal masks
        if step < ramp and step % cfg.mask_every == 0:
            masks = magnitude_masks(m, polynomial_sparsity(step, ramp, initial=cfg.initial, final=cfg.final),
                                    scope=cfg.scope)
        apply_masks(m, masks)

    distill = cfg.distill
    fine_tune(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
              iterations=cfg.finetune_iters, batch_size=cfg.batch_size, lr=cfg.lr,
              seed=seed + 101, teacher=copy.deepcopy(teacher).eval() if distill else None,
              temperature=distill.temperature if distill else 4.0, alpha=distill.alpha if distill else 0.0,
              after_step=after_step)
    apply_masks(model, magnitude_masks(model, cfg.final, scope=cfg.scope))
    return {"sparsity": round(sparsity_of(model), 4),
            "note": "zeros shrink the gzip-compressed file; onnxruntime runs them dense, so latency is unchanged"}


def _quantize_steps(work: Net, model: Net, spec: ArchSpec, q: QuantizeConfig, splits: Splits,
                    seed: int, applied: Applied) -> None:
    """QAT and 4-bit weight groups: the float-side steps of quantization, before export."""
    if q.qat_iters:
        qat_fine_tune(work, copy.deepcopy(model).eval(), splits.x_train, splits.y_train,
                      preprocess=splits.preprocess, resolution=spec.resolution, iterations=q.qat_iters,
                      lr=q.qat_lr, per_channel=q.per_channel, seed=seed + 13)
        applied.qat = {"iterations": q.qat_iters, "note": "QAT-trained weights; activation ranges recalibrated "
                                                          "by the static quantization that exports them"}
    if q.weight_bits:
        low = apply_weight_bits(work, spec, dict(q.weight_bits))
        applied.lowbit = LowBitOutcome(dict(q.weight_bits), low)


def _float_steps(work: Net, model: Net, spec: ArchSpec, recipe: Recipe, splits: Splits,
                 seed: int) -> Applied:
    """Every step on the float network, in recipe order (``model``: the original, a teacher)."""
    applied = Applied()
    if recipe.prune is not None:
        applied.prune = _prune(work, spec, recipe.prune, splits, seed)
    if recipe.sparsity is not None:
        applied.sparsity = _sparsify(work, spec, recipe.sparsity, splits, seed, teacher=model)
    if recipe.lowrank is not None:
        lr = recipe.lowrank
        factored = factorize(work, lr.rank_ratio)
        fine_tune(work, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                  iterations=lr.finetune_iters, batch_size=lr.batch_size, lr=lr.lr,
                  seed=seed + 7)
        applied.lowrank = {"factored_layers": {k: list(v) for k, v in factored.items()}}
    if recipe.share is not None:
        fuse_bn(work)  # share what is deployed: BN folding rescales every output channel
        layers = share_weights(work, recipe.share.bits, dict(recipe.share.layer_bits or {}))
        applied.share = ShareOutcome(encoded_bytes=len(encode(work, layers)), layers=len(layers))
    if recipe.quantize is not None:
        _quantize_steps(work, model, spec, recipe.quantize, splits, seed, applied)
    return applied


def apply_recipe(model: Net, spec: ArchSpec, recipe: Recipe, splits: Splits, *,
                 seed: int = 0) -> tuple[bytes, Net, Applied]:
    """The compressed ONNX file, the compressed float module and what each step did; ``model`` is
    left untouched."""
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    work = copy.deepcopy(model).eval()
    applied = _float_steps(work, model, spec, recipe, splits, seed)
    with torch.no_grad():
        out = to_onnx(work, info)
    if recipe.quantize is not None:
        q = recipe.quantize
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(splits.y_train), min(q.calibration_images, len(splits.y_train)), replace=False)
        calibration = to_tensor(splits.x_train[idx], splits.preprocess, spec.resolution).numpy()
        out = quantize(out, q.mode, calibration_inputs=calibration, method=q.calibration_method,
                       per_channel=q.per_channel, fmt=q.format, activations=q.activations, scales=q.scales)
    return _stamp(out, recipe, applied), work, applied


def _stamp(model: bytes, recipe: Recipe, applied: Applied) -> bytes:
    proto = onnx.load_from_string(model)
    props = {p.key: p.value for p in proto.metadata_props}
    props["hwnas.recipe"] = recipe.to_json()
    if applied.prune is not None:
        props["hwnas.pruned_channels"] = json.dumps(applied.prune.kept_channels)
        props["hwnas.arch_note"] = "hwnas.arch is the network before pruning; hidden channels per block: pruned_channels"
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    return proto.SerializeToString()
