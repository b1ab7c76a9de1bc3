"""The steps of a recipe on a model from outside the grammar (a user's PyTorch module or ONNX
file): structured pruning through the dependency graph (:mod:`compress.graph_prune`) to a ratio
or a budget, distilled fine-tuning from the original, and int8/fp16 quantization of the ONNX
file by the same quantizer as searched networks (:mod:`compress.quantize`).

Budgets: ``prune.ratio`` (share of every prunable layer's channels), ``prune.target_macs`` and
``prune.target_params`` (share of the original's to keep), ``prune.target_latency_ms`` (predicted
latency on the target profile: the caller passes that cost, since profiles live above this layer).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compress.distill import fine_tune
from compress.graph_prune import Cost, GraphPruned, prune_any, stages, widths
from compress.quantize import quantize
from compress.recipe import PruneConfig, QuantizeConfig
from nas.core.errors import UserError
from nas.cost.costs import count_macs
from nas.data.splits import Splits, to_tensor

log = logging.getLogger(__name__)


def _gradients(splits: Splits, resolution: int, batches: int, batch: int, seed: int) -> Callable[[nn.Module], None]:
    """Fills a module's gradients with the cross-entropy of ``batches`` training batches (taylor)."""
    rng = np.random.default_rng(seed)
    draws = [rng.choice(len(splits.y_train), min(batch, len(splits.y_train)), replace=False) for _ in range(batches)]

    def fill(model: nn.Module) -> None:
        model.zero_grad(set_to_none=True)
        model.eval()
        for idx in draws:
            x = to_tensor(splits.x_train[idx], splits.preprocess, resolution)
            F.cross_entropy(model(x), torch.from_numpy(splits.y_train[idx]).long()).backward()
    return fill


def budget(cfg: PruneConfig, example: torch.Tensor, latency: Cost | None) -> tuple[str, Cost]:
    """The name and function of the cost ``cfg`` prunes by (MACs where it prunes by a ratio)."""
    if cfg.target_params is not None:
        return "parameters", lambda m: float(sum(p.numel() for p in m.parameters()))
    if cfg.target_latency_ms is not None:
        if latency is None:
            raise UserError("prune.target_latency_ms needs a target profile to predict latency on (--profile)")
        return "latency_ms", latency
    return "macs", lambda m: float(count_macs(m, example))


def prune_own(model: nn.Module, cfg: PruneConfig, splits: Splits, input_shape: tuple[int, ...], *, seed: int = 0,
              latency: Cost | None = None) -> tuple[nn.Module, GraphPruned]:
    """A pruned, fine-tuned copy of ``model`` (``cfg.steps`` rounds of prune then fine-tune; the
    original is the teacher when ``cfg.distill``) and what pruning did."""
    example = torch.zeros(input_shape)
    resolution = input_shape[-1]
    name, cost = budget(cfg, example, latency)
    teacher = copy.deepcopy(model).eval() if cfg.distill else None
    start = cost(model)
    share = (cfg.target_macs if cfg.target_macs is not None else cfg.target_params if cfg.target_params is not None
             else None if cfg.target_latency_ms is None else min(1.0, cfg.target_latency_ms / start))
    work, first, outcome = model, None, None
    round_to = cfg.round_to if cfg.round_to > 1 else None
    for step in range(1, cfg.steps + 1):
        grads = (_gradients(splits, resolution, cfg.taylor_batches, cfg.batch_size, seed + step)
                 if cfg.criterion == "taylor" else None)
        if share is None:
            assert cfg.ratio is not None
            per_step = {k: 1 - (1 - r) ** (1 / cfg.steps) for k, r in cfg.stage_ratios.items()}
            unknown = sorted(set(per_step) - set(stages(work, example)))
            if unknown:
                raise UserError(f"prune.stage_ratios names {', '.join(unknown)}; the model's stages: "
                                f"{', '.join(stages(work, example)) or 'none (fewer than two)'}")
            work, outcome = prune_any(work, example, criterion=cfg.criterion, ratio=1 - (1 - cfg.ratio) ** (1 / cfg.steps),
                                      cost=cost, cost_name=name, round_to=round_to, gradients=grads,
                                      stage_ratios=per_step, global_scope=cfg.scope == "global")
        else:
            goal = start * share ** (step / cfg.steps)
            work, outcome = prune_any(work, example, criterion=cfg.criterion, keep=min(1.0, goal / cost(work)),
                                      cost=cost, cost_name=name, round_to=round_to, gradients=grads,
                                      global_scope=cfg.scope == "global")
        first = first or outcome
        d = cfg.distill
        fine_tune(work, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=resolution,
                  iterations=cfg.finetune_iters, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed + step,
                  teacher=teacher, temperature=d.temperature if d else 4.0, alpha=d.alpha if d else 0.0)
        log.info("prune step %d/%d: %s %.4g of %.4g", step, cfg.steps, name, outcome.after, start)
    assert outcome is not None and first is not None
    before, after = widths(model), widths(work)
    channels = {n: [w, after[n]] for n, w in before.items() if n in after and after[n] != w}
    target = None if share is None else start * share
    return work, GraphPruned(cfg.criterion, name, start, outcome.after, target, cfg.steps, channels,
                             first.left_dense | outcome.left_dense)


def quantize_own(onnx_bytes: bytes, q: QuantizeConfig, splits: Splits, resolution: int, *, seed: int = 0) -> bytes:
    """The ONNX file quantized as ``q`` says, calibrated on training images (static int8)."""
    if q.weight_bits or q.qat_iters:
        raise UserError("quantize.weight_bits and quantize.qat_iters apply to hwnas's own networks; for your model "
                        "use mode, calibration_method, calibration_images, per_channel, format, activations, scales")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(splits.y_train), min(q.calibration_images, len(splits.y_train)), replace=False)
    calibration = to_tensor(splits.x_train[idx], splits.preprocess, resolution).numpy()
    return quantize(onnx_bytes, q.mode, calibration_inputs=calibration, method=q.calibration_method,
                    per_channel=q.per_channel, fmt=q.format, activations=q.activations, scales=q.scales)
