"""Proxy training of one candidate: a short, seeded run under the config's budget."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from nas.core.errors import UserError
from nas.core.config import TrainConfig
from nas.core.progress import Ticker
from nas.data.splits import Preprocess, to_tensor
from nas.train.layout import to_channels_last, to_contiguous
from nas.train.losses import soft_loss

log = logging.getLogger(__name__)

EpochHook = Callable[[int, nn.Module], None]  # (epoch, 1-based; the model): called after each epoch


def pick_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(name)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer,
               total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle" and total_steps >= 3:
        # each of its two phases needs a step: a quarter warm-up, or 2 steps of a short schedule
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps,
                                                   pct_start=max(0.25, 2 / total_steps))
    if cfg.schedule == "onecycle":
        log.info("onecycle needs 3 steps or more; %d step(s) train at constant lr %g", total_steps, cfg.lr)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train(model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
          resolution: int, cfg: TrainConfig, seed: int, teacher_logits: np.ndarray | None = None,
          on_epoch: EpochHook | None = None) -> list[float]:
    """Train ``model`` in place on uint8 NHWC ``images``; returns the mean loss of each epoch.
    ``on_epoch(epoch, model)`` runs after each epoch (1-based; the model on its device); what it
    raises ends the training (early stopping). With ``teacher_logits`` (one row per image) and
    ``cfg.distill``, the loss is alpha * T^2 * KL(teacher || student) + (1 - alpha) * the label
    loss. The subset and the batch order come from ``seed`` alone: a trial re-runs identically."""
    distill = cfg.distill if teacher_logits is not None else None
    if distill is not None:
        assert teacher_logits is not None and len(teacher_logits) == len(labels)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if cfg.train_subset and cfg.train_subset < len(labels):
        keep = np.sort(rng.choice(len(labels), cfg.train_subset, replace=False))
        images, labels = images[keep], labels[keep]
        if teacher_logits is not None:
            teacher_logits = teacher_logits[keep]
    soft = torch.from_numpy(teacher_logits) if distill is not None and teacher_logits is not None else None
    x_all = to_tensor(images, preprocess, resolution)
    y_all = torch.from_numpy(labels)
    to_channels_last(model, device).train()
    optimizer = make_optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(y_all) / cfg.batch_size)
    scheduler = make_scheduler(cfg, optimizer, cfg.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    epoch_losses = []
    ticker = Ticker("training step", cfg.epochs * steps_per_epoch, indent="    ")
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(y_all)))
        total, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = x_all[idx].to(device, memory_format=torch.channels_last)
            y = y_all[idx].to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            if soft is not None and distill is not None:
                loss = (distill.alpha * soft_loss(logits, soft[idx].to(device), distill.temperature)
                        + (1 - distill.alpha) * loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            correct, seen = correct + int((logits.detach().argmax(1) == y).sum()), seen + len(idx)
            ticker.update(epoch * steps_per_epoch + step + 1, f"epoch {epoch + 1}/{cfg.epochs}, loss "
                          f"{total / seen:.3f}, train acc {100 * correct / seen:.1f}%", force=step == steps_per_epoch - 1)
        epoch_losses.append(total / len(y_all))
        if not math.isfinite(epoch_losses[-1]):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {epoch_losses[-1]})")
        log.debug("epoch %d/%d loss %.4f", epoch + 1, cfg.epochs, epoch_losses[-1])
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    to_contiguous(model, "cpu").eval()
    return epoch_losses
