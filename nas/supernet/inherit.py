"""Subnetworks with inherited weights: extract, re-estimate BatchNorm statistics, evaluate.

:class:`Inheritor` has the signature of :func:`nas.train.trainer.train`, so a search on a
supernet runs the very evaluation a per-trial search runs (compression, export, measurement on
the file), with "training" replaced by taking the supernet's weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.core.config import TrainConfig
from nas.data.splits import Preprocess, to_tensor
from nas.space.builder import Net
from nas.supernet.net import Supernet
from nas.train.trainer import EpochHook

log = logging.getLogger(__name__)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: np.ndarray, preprocess: Preprocess, resolution: int, *,
                   n_images: int, seed: int, batch_size: int = 256) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as exact averages over
    ``n_images`` training images drawn with ``seed`` (train-mode forward passes, no weight change);
    returns the number of images used. Works on a plain network or an extracted subnetwork."""
    rng = np.random.default_rng(seed)
    n = min(n_images, len(images))
    chosen = np.sort(rng.choice(len(images), n, replace=False))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    for start in range(0, n, batch_size):
        model(to_tensor(images[chosen[start:start + batch_size]], preprocess, resolution))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.eval()
    return n


@dataclass
class Inheritor:
    """A "trainer" that fills a candidate with the supernet's weights and re-estimates its
    BatchNorm statistics on ``bn_images`` training images (no gradient step)."""

    supernet: Supernet
    bn_images: int

    def __call__(self, model: Net, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                 resolution: int, cfg: TrainConfig, seed: int, teacher_logits: np.ndarray | None = None,
                 on_epoch: EpochHook | None = None) -> list[float]:
        # no epochs to stop early: the config refuses search.early_stopping with the supernet strategy
        model.load_state_dict(self.supernet.extract(model.spec).state_dict())
        used = recalibrate_bn(model, images, preprocess, resolution, n_images=self.bn_images, seed=seed)
        log.debug("inherited %s, BatchNorm re-estimated on %d images", model.spec.format(), used)
        return []


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, preprocess: Preprocess, resolution: int,
             *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) in PyTorch: the supernet's quick estimate, not a
    figure any front reports (those are measured on the exported file)."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = to_tensor(images[start:start + batch_size], preprocess, resolution)
        correct += int((model(x).argmax(1).numpy() == labels[start:start + batch_size]).sum())
    return correct / max(1, len(labels))
