"""Low-rank factorization: a 1x1 convolution or linear layer W (out x in) becomes two, in -> r -> out,
from the truncated SVD W ~ (U_r S_r) V_r^T, with r = ceil(rank_ratio * min(out, in)). Applied to
the deployed (BatchNorm-folded) network; a layer is factored only when it saves multiply-adds
(r * (in + out) < in * out).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from nas.core.errors import UserError
from nas.space.builder import fuse_bn


def _factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    return vh[:rank], u[:, :rank] * s[:rank]  # first: (r, in), second: (out, r)


def _pair(m: nn.Conv2d | nn.Linear, rank: int, first: torch.Tensor,
          second: torch.Tensor) -> tuple[nn.Conv2d | nn.Linear, nn.Conv2d | nn.Linear]:
    """The two factor layers replacing ``m`` (first: in -> rank, with m's stride; second: rank -> out)."""
    out_f, in_f = second.shape[0], first.shape[1]
    bias = m.bias is not None
    if isinstance(m, nn.Conv2d):
        a = nn.Conv2d(in_f, rank, 1, stride=(m.stride[0], m.stride[1]), bias=False)
        b = nn.Conv2d(rank, out_f, 1, bias=bias)
        a.weight.data.copy_(first[:, :, None, None])
        b.weight.data.copy_(second[:, :, None, None])
        return a, b
    lin_a, lin_b = nn.Linear(in_f, rank, bias=False), nn.Linear(rank, out_f, bias=bias)
    lin_a.weight.data.copy_(first)
    lin_b.weight.data.copy_(second)
    return lin_a, lin_b


def factorize(model: nn.Module, rank_ratio: float) -> dict[str, tuple[int, int, int]]:
    """Fold BatchNorm, then factor every 1x1 ungrouped conv and linear layer that gains from it, in
    place. Returns {layer: (in, out, rank)} of the factored layers."""
    if not 0 < rank_ratio <= 1:
        raise UserError(f"rank_ratio {rank_ratio} not allowed; allowed: 0 < ratio <= 1")
    fuse_bn(model)
    done = {}
    targets = [(name, m) for name, m in model.named_modules()
               if (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1) or isinstance(m, nn.Linear)]
    for name, m in targets:
        w = m.weight.detach().flatten(1)
        out_f, in_f = w.shape
        rank = max(1, math.ceil(rank_ratio * min(out_f, in_f)))
        if rank * (in_f + out_f) >= in_f * out_f:
            continue
        first, second = _factors(w, rank)
        a, b = _pair(m, rank, first, second)
        if m.bias is not None and b.bias is not None:
            b.bias.data.copy_(m.bias.detach())
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Sequential(a, b))
        done[name] = (in_f, out_f, rank)
    return done
