"""Unstructured magnitude pruning (Han et al. 2015; TF Model Optimization's schedule): zero the
smallest weights of conv and linear layers, globally or per layer, raising sparsity along a
polynomial-decay schedule during fine-tuning.

Honest reporting: zeros shrink the *compressed* file (gzip, or a sparse format), not the ONNX file
and not the latency, which stay those of the dense model unless a runtime exploits sparsity
(onnxruntime's CPU convolutions do not).
"""
from __future__ import annotations

import torch
from torch import nn

from nas.core.errors import UserError

SCOPES = ("global", "per-layer")


def prunable_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Weights of convolutions and linear layers (biases and norms stay dense)."""
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def polynomial_sparsity(step: int, total: int, *, initial: float, final: float, power: float = 3.0) -> float:
    """TF-MOT's PolynomialDecay: sparsity at ``step`` of ``total`` going from ``initial`` to ``final``."""
    t = min(max(step / max(total, 1), 0.0), 1.0)
    return final + (initial - final) * (1 - t) ** power


def magnitude_masks(model: nn.Module, sparsity: float, *, scope: str = "global") -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing ``sparsity`` of the prunable weights by absolute value."""
    if not 0 <= sparsity < 1:
        raise UserError(f"sparsity {sparsity} not allowed; allowed: 0 <= sparsity < 1")
    if scope not in SCOPES:
        raise UserError(f"sparsity scope {scope!r} not allowed; allowed: {', '.join(SCOPES)}")
    weights = prunable_weights(model)
    if scope == "global":
        flat = torch.cat([w.detach().abs().flatten() for _, w in weights])
        k = int(sparsity * flat.numel())
        threshold = flat.kthvalue(k).values if k > 0 else torch.tensor(-1.0)
        return {name: w.detach().abs() > threshold for name, w in weights}
    masks = {}
    for name, w in weights:
        k = int(sparsity * w.numel())
        threshold = w.detach().abs().flatten().kthvalue(k).values if k > 0 else torch.tensor(-1.0)
        masks[name] = w.detach().abs() > threshold
    return masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, w in prunable_weights(model):
            if name in masks:
                w.mul_(masks[name])


def sparsity_of(model: nn.Module) -> float:
    """Share of zero weights over the prunable weights."""
    weights = [w.detach() for _, w in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    return float(sum((w == 0).sum() for w in weights)) / max(total, 1)
