"""The fine-tuning loop run after pruning, sparsity, low-rank and QAT, distilled from the
uncompressed network when asked (the losses live in :mod:`nas.train.losses`)."""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.core.progress import Ticker
from nas.data.splits import Preprocess, to_tensor
from nas.train.layout import to_channels_last, to_contiguous
from nas.train.losses import kd_loss

log = logging.getLogger(__name__)


def fine_tune(model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess, resolution: int,
              iterations: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
              teacher: nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.9,
              extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
              after_step: Callable[[nn.Module, int], None] | None = None) -> list[float]:
    """``iterations`` AdamW steps with a cosine schedule, in place, on uint8 NHWC images; with a
    ``teacher``, the loss is :func:`kd_loss`; ``after_step(model, step)`` runs after each update.
    Returns the loss of every 10th step."""
    if iterations <= 0:
        return []
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    to_channels_last(model).train()
    if teacher is not None:
        to_channels_last(teacher).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)
    losses = []
    ticker = Ticker("fine-tuning step", iterations, indent="    ")  # a line every 20 s: n/N, elapsed, ETA
    for step in range(iterations):
        idx = rng.choice(len(labels), min(batch_size, len(labels)), replace=False)
        x = to_tensor(images[idx], preprocess, resolution).to(memory_format=torch.channels_last)
        y = torch.from_numpy(labels[idx]).long()
        logits = model(x)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(x)
            loss = kd_loss(logits, target, y, temperature=temperature, alpha=alpha)
        else:
            loss = F.cross_entropy(logits, y)
        if extra_loss is not None:
            loss = loss + extra_loss(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if after_step is not None:  # e.g. re-apply sparsity masks
            after_step(model, step)
        if step % 10 == 0:
            losses.append(float(loss.detach()))
        ticker.update(step + 1, f"loss {losses[-1]:.3f}", force=step + 1 == iterations and iterations >= 500)
    to_contiguous(model).eval()
    log.debug("fine-tuned %d steps, last loss %.4f", iterations, losses[-1])
    return losses
