"""Final training of a chosen architecture: the whole training split, augmentation, a checkpoint
after every epoch, and the same call after a kill continues from the last one.

:class:`FinalTrainer` has the signature of :func:`nas.train.trainer.train`, so the search's
evaluation (compress, export, measure the file) runs unchanged on a finally trained network.

>>> cfg = FinalConfig(epochs=1, batch_size=4, augment=("crop", "flip"))
>>> out = augment_batch(np.zeros((2, 8, 8, 3), np.uint8), cfg.augmentations(3), np.random.default_rng(0))
>>> out.shape, out.dtype
((2, 8, 8, 3), dtype('uint8'))
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.core.config import FinalConfig, TrainConfig
from nas.core.errors import UserError
from nas.core.progress import Ticker
from nas.data.splits import Preprocess, to_tensor
from nas.train.layout import to_channels_last, to_contiguous
from nas.train.losses import soft_loss
from nas.train.trainer import EpochHook, make_optimizer, make_scheduler, pick_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, for progress lines."""

    epoch: int
    epochs: int
    loss: float
    val_accuracy: float
    seconds: float  # this epoch
    eta_s: float  # the remaining epochs at the mean pace of those run in this process
    resumed_from: int  # epochs already done when this process started


def augment_batch(images: np.ndarray, augment: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """uint8 NHWC images randomly shifted (zero padding of 1/8 of the side, then a crop back to
    the size) and, with ``flip``, mirrored left-right half of the time."""
    out = images
    n, h, w, _ = images.shape
    if "crop" in augment:
        pad = max(1, h // 8)
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
        rows = (dy[:, None] + np.arange(h))[:, :, None]
        cols = (dx[:, None] + np.arange(w))[:, None, :]
        out = padded[np.arange(n)[:, None, None], rows, cols]
    if "flip" in augment:
        flip = rng.random(n) < 0.5
        out = out.copy() if out is images else out
        out[flip] = out[flip, :, ::-1]
    return out


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess, resolution: int,
             device: torch.device, batch_size: int = 500) -> float:
    """Top-1 accuracy of the PyTorch model in eval mode (progress only: recorded accuracies are
    measured on exported files)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            x = to_tensor(images[start:start + batch_size], preprocess, resolution)
            logits = model(x.to(device, memory_format=torch.channels_last))
            correct += int((logits.argmax(1).cpu().numpy() == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(labels))


def _subset(images: np.ndarray, labels: np.ndarray, soft: np.ndarray | None, subset: int | None,
            seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A seeded subset of the training split (all of it when ``subset`` is None)."""
    if not subset or subset >= len(labels):
        return images, labels, soft
    keep = np.sort(np.random.default_rng(seed).choice(len(labels), subset, replace=False))
    return images[keep], labels[keep], soft[keep] if soft is not None else None


def _batch_loss(logits: torch.Tensor, labels: torch.Tensor, loss_fn: nn.Module, soft: torch.Tensor | None,
                cfg: TrainConfig) -> torch.Tensor:
    """The label loss, mixed with distillation from the teacher's logits ``soft`` when given."""
    loss: torch.Tensor = loss_fn(logits, labels)
    if soft is None or cfg.distill is None:
        return loss
    return cfg.distill.alpha * soft_loss(logits, soft, cfg.distill.temperature) + (1 - cfg.distill.alpha) * loss


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"--init-from {path}: cannot read it ({exc.strerror}); allowed: a weights.pt file") from None


def _save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename: a kill at any
    moment leaves the previous checkpoint or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or an interrupt mid-write: the previous checkpoint stays, no .tmp
        tmp.unlink(missing_ok=True)
        raise


def _augmentations(cfg: TrainConfig, preprocess: Preprocess, *, distilled: bool) -> tuple[str, ...]:
    augment = cfg.augmentations(preprocess.channels) if isinstance(cfg, FinalConfig) else ()
    if distilled and augment:
        raise UserError("final.distill needs final.augment: [] (the teacher's logits are of unaugmented "
                        "images); allowed: distillation without augmentation, or augmentation without it")
    return augment


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return pick_device(cfg.device)


class FinalTrainer:
    """Trains to convergence with a checkpoint per epoch in ``checkpoint``; a matching checkpoint
    found there is resumed (one made with other settings is refused, naming the difference)."""

    def __init__(self, checkpoint: Path, x_val: np.ndarray, y_val: np.ndarray,
                 on_epoch: Callable[[EpochReport], None] | None = None, init_from: Path | None = None) -> None:
        self.checkpoint, self.x_val, self.y_val, self.on_epoch = checkpoint, x_val, y_val, on_epoch
        self.init_from = init_from
        self.init_sha256 = _sha256(init_from) if init_from is not None else None
        self.history: list[dict[str, float]] = []

    def _fingerprint(self, model: nn.Module, cfg: TrainConfig, seed: int, n_train: int, resolution: int) -> str:
        shapes = [list(p.shape) for p in model.parameters()]
        # where it runs may change between sessions; what it learns may not
        settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("threads", "device")}
        return json.dumps({"cfg": settings, "seed": seed, "n_train": n_train, "init_from": self.init_sha256,
                           "resolution": resolution, "shapes": shapes}, sort_keys=True, default=str)

    def _initialise(self, model: nn.Module) -> None:
        """Start from the weights in ``init_from`` (a ``weights.pt`` of the same architecture)."""
        assert self.init_from is not None
        try:
            weights = torch.load(self.init_from, map_location="cpu", weights_only=True)
            model.load_state_dict(weights)
        except Exception as exc:
            raise UserError(f"--init-from {self.init_from}: not weights of this architecture ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160]}); allowed: a weights.pt written for the same arch") from None
        log.info("initialised from %s (sha256 %s)", self.init_from, self.init_sha256)

    def _resume(self, fingerprint: str) -> dict[str, Any] | None:
        if not self.checkpoint.exists():
            return None
        try:
            # tensors, numbers and strings only: a run folder is shared, and a file in it must never run code
            state: dict[str, Any] = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # a checkpoint is only ever replaced whole, so this is outside damage
            raise UserError(f"{self.checkpoint}: not a readable checkpoint ({type(exc).__name__}); "
                            "delete it to start this model's training over") from None
        if state.get("fingerprint") != fingerprint:
            old, new = json.loads(state.get("fingerprint") or "{}"), json.loads(fingerprint)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if "cfg" in changed:
                changed += [f"final.{k}" for k in sorted(set(old.get("cfg", {})) | set(new["cfg"]))
                            if old.get("cfg", {}).get(k) != new["cfg"].get(k)]
            raise UserError(f"{self.checkpoint} was made with other settings ({', '.join(changed)}); rerun with "
                            "the same options to resume, or pass --restart to train this model from scratch")
        return state

    def _restore(self, fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        """Load a matching checkpoint (or the --init-from weights); the number of epochs done."""
        state = self._resume(fingerprint)
        if state is None:
            if self.init_from is not None:
                self._initialise(model)
            return 0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])
        log.info("resuming %s after epoch %d", self.checkpoint, int(state["epoch"]))
        return int(state["epoch"])

    def __call__(self, model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                 resolution: int, cfg: TrainConfig, seed: int, teacher_logits: np.ndarray | None = None,
                 on_epoch: EpochHook | None = None) -> list[float]:
        augment = _augmentations(cfg, preprocess, distilled=teacher_logits is not None)
        device = _device(cfg)
        images, labels, teacher_logits = _subset(images, labels, teacher_logits, cfg.train_subset, seed)
        torch.manual_seed(seed)
        to_channels_last(model, device).train()
        optimizer = make_optimizer(cfg, model)
        steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
        scheduler = make_scheduler(cfg, optimizer, cfg.epochs * steps_per_epoch)
        fingerprint = self._fingerprint(model, cfg, seed, len(labels), resolution)
        start_epoch = self._restore(fingerprint, model, optimizer, scheduler)
        soft = torch.from_numpy(teacher_logits) if teacher_logits is not None else None
        y_all = torch.from_numpy(labels)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        began = time.perf_counter()
        # within an epoch, a line every 30 s; each epoch's end is the caller's EpochReport
        ticker = Ticker("final training step", (cfg.epochs - start_epoch) * steps_per_epoch, every_s=30.0,
                        indent="  ")
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            rng = np.random.default_rng([seed, epoch])  # the same order and augmentation after a resume
            order = rng.permutation(len(labels))
            total = 0.0
            for step in range(steps_per_epoch):
                idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                batch = augment_batch(images[idx], augment, rng) if augment else images[idx]
                x = to_tensor(batch, preprocess, resolution).to(device, memory_format=torch.channels_last)
                loss = _batch_loss(model(x), y_all[idx].to(device), loss_fn,
                                   soft[idx].to(device) if soft is not None else None, cfg)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += float(loss.detach()) * len(idx)
                seen = min(len(labels), (step + 1) * cfg.batch_size)
                ticker.update((epoch - start_epoch) * steps_per_epoch + step + 1,
                              f"epoch {epoch + 1}/{cfg.epochs}, loss {total / seen:.3f}")
            mean_loss = total / len(labels)
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {mean_loss}); "
                                         f"try a lower {cfg.SECTION}.lr than {cfg.lr}")
            val = accuracy(model, self.x_val, self.y_val, preprocess=preprocess, resolution=resolution, device=device)
            self.history.append({"epoch": epoch + 1, "loss": mean_loss, "val_accuracy": val,
                                 "seconds": time.perf_counter() - started})
            _save_atomic({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                          "history": self.history, "fingerprint": fingerprint}, self.checkpoint)
            done_here = epoch + 1 - start_epoch
            eta = (time.perf_counter() - began) / done_here * (cfg.epochs - epoch - 1)
            if self.on_epoch is not None:
                self.on_epoch(EpochReport(epoch + 1, cfg.epochs, mean_loss, val, time.perf_counter() - started, eta,
                                          start_epoch))
            if on_epoch is not None:
                on_epoch(epoch + 1, model)
        to_contiguous(model, "cpu").eval()
        return [h["loss"] for h in self.history]
