"""Training a supernet: the sandwich rule with in-place distillation (BigNAS), seeded, resumable.

Each step draws one resolution for the batch; at it the largest subnetwork learns the labels
(label smoothing ``label_smoothing``), the smallest and ``random_subnets`` random subnetworks
(drawn at MAC targets within the search's budgets, :mod:`nas.supernet.sampling`) learn the
largest's softened outputs; one optimizer step for their summed gradients. After each epoch the
hidden channels are sorted by importance (:meth:`Supernet.reorder`, optimizer state permuted with them). The batch order and the random
subnetworks of step ``s`` of epoch ``e`` depend on ``(seed, e, s)`` only, so a run resumed from
its checkpoint (written every epoch and every ``checkpoint_minutes``) continues exactly.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.core.config import Budgets, SupernetConfig
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.data.splits import Splits, to_tensor
from nas.supernet.net import Supernet
from nas.supernet.sampling import SubnetSampler, at
from nas.train.layout import to_channels_last, to_contiguous
from nas.train.losses import soft_loss
from nas.train.trainer import make_optimizer, make_scheduler, pick_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepReport:
    """Progress of supernet training after a step."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss_largest: float  # mean over the epoch so far
    loss_distilled: float  # mean of the distilled subnetworks' losses over the epoch so far
    seconds: float  # training time so far, resumed sessions included
    eta_s: float


@dataclass
class _State:
    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    sums: tuple[float, float, int] = (0.0, 0.0, 0)  # loss sums of the epoch so far, and steps
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def _fingerprint(net: Supernet, cfg: SupernetConfig, seed: int, n_train: int, sampler: SubnetSampler) -> str:
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("threads", "device", "checkpoint_minutes")}
    return json.dumps({"cfg": settings, "seed": seed, "n_train": n_train, "sampler": sampler.describe(),
                       "space": dataclasses.asdict(net.space.cfg)}, sort_keys=True, default=str)


class SupernetTrainer:
    """Trains ``net`` on ``splits`` under ``cfg``, checkpointing to ``checkpoint``."""

    def __init__(self, net: Supernet, splits: Splits, cfg: SupernetConfig, *, seed: int, checkpoint: Path,
                 budgets: Budgets = Budgets(), on_step: Callable[[StepReport], None] | None = None) -> None:
        self.net, self.splits, self.cfg, self.seed, self.checkpoint = net, splits, cfg, seed, checkpoint
        self.on_step = on_step
        self.sampler = SubnetSampler(net.space, budgets, cfg.sampling)
        rng = np.random.default_rng(seed)
        n = len(splits.y_train)
        keep = np.sort(rng.choice(n, cfg.train_subset, replace=False)) if cfg.train_subset and cfg.train_subset < n \
            else np.arange(n)
        self.images, self.labels = splits.x_train[keep], splits.y_train[keep]
        self.steps = math.ceil(len(self.labels) / cfg.batch_size)
        self.device = pick_device(cfg.device)
        # bfloat16 autocast on a GPU that has it (no loss scaling needed; BatchNorm and the losses stay
        # float32 under autocast); float32 elsewhere. Not run on a GPU here: no device was lent.
        self.bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.fingerprint = _fingerprint(net, cfg, seed, len(self.labels), self.sampler)

    def run(self) -> list[dict[str, float]]:
        """Train (resuming a matching checkpoint) to the last epoch; returns the per-epoch history."""
        cfg, net = self.cfg, self.net
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        to_channels_last(net, self.device).train()
        optimizer = make_optimizer(cfg, net)
        scheduler = make_scheduler(cfg, optimizer, cfg.epochs * self.steps)
        state = self._restore(optimizer, scheduler)
        last_save = time.perf_counter()
        while state.epoch < cfg.epochs:
            started = time.perf_counter()
            self._step(state, optimizer)
            scheduler.step()
            state.step += 1
            state.seconds += time.perf_counter() - started
            self._report(state)
            if state.step == self.steps:
                self._end_epoch(state, optimizer)
            if state.step == 0 or time.perf_counter() - last_save > 60 * cfg.checkpoint_minutes:
                self._save(state, optimizer, scheduler)
                last_save = time.perf_counter()
        to_contiguous(net, "cpu").eval()
        return state.history

    def _step(self, state: _State, optimizer: torch.optim.Optimizer) -> None:
        """One sandwich step at one resolution: largest on labels, smallest and random ones distilled from it."""
        net, space, cfg, device = self.net, self.net.space, self.cfg, self.device
        rng = np.random.default_rng([self.seed, state.epoch, state.step])
        order = np.random.default_rng([self.seed, state.epoch]).permutation(len(self.labels))
        idx = order[state.step * cfg.batch_size:(state.step + 1) * cfg.batch_size]
        images, labels = self.images[idx], torch.from_numpy(self.labels[idx]).to(device)
        optimizer.zero_grad(set_to_none=True)
        resolution = self.sampler.resolution(rng)
        x = self._batch(images, resolution)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            logits = net(x, at(space.largest(), resolution)).float()
        loss = nn.functional.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        loss.backward()
        soft = logits.detach()
        distilled = 0.0
        students = [at(space.smallest(), resolution), *(self.sampler.draw(rng, resolution)
                                                        for _ in range(cfg.random_subnets))]
        for spec in students:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                student = net(x, spec).float()
            student_loss = soft_loss(student, soft, cfg.distill_temperature)
            student_loss.backward()
            distilled += float(student_loss.detach()) / len(students)
        optimizer.step()
        largest_loss = float(loss.detach())
        if not (math.isfinite(largest_loss) and math.isfinite(distilled)):
            raise FloatingPointError(f"supernet training diverged at epoch {state.epoch + 1} step {state.step + 1} "
                                     f"(loss {largest_loss}, distilled {distilled}); lower supernet.lr")
        a, b, n = state.sums
        state.sums = (a + largest_loss, b + distilled, n + 1)

    def _batch(self, images: np.ndarray, resolution: int) -> torch.Tensor:
        x = to_tensor(images, self.splits.preprocess, resolution)
        return x.to(self.device, memory_format=torch.channels_last)

    def _report(self, state: _State) -> None:
        a, b, n = state.sums
        done = state.epoch * self.steps + state.step
        left = self.cfg.epochs * self.steps - done
        eta = state.seconds / max(1, done) * left
        if self.on_step is not None:
            self.on_step(StepReport(state.epoch + 1, self.cfg.epochs, state.step, self.steps, a / max(1, n),
                                    b / max(1, n), state.seconds, eta))

    def _end_epoch(self, state: _State, optimizer: torch.optim.Optimizer) -> None:
        a, b, n = state.sums
        reordered = self.net.reorder(optimizer) if self.cfg.reorder else 0
        state.history.append({"epoch": state.epoch + 1, "loss_largest": a / max(1, n),
                              "loss_distilled": b / max(1, n), "seconds": state.seconds, "reordered": reordered})
        log.info("supernet epoch %d/%d: loss %.4f, distilled %.4f", state.epoch + 1, self.cfg.epochs, a / max(1, n),
                 b / max(1, n))
        state.epoch, state.step, state.sums = state.epoch + 1, 0, (0.0, 0.0, 0)

    def _save(self, state: _State, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        buffer = io.BytesIO()
        torch.save({"fingerprint": self.fingerprint, "net": self.net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": dataclasses.asdict(state)}, buffer)
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.checkpoint, buffer.getvalue())

    def _restore(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> _State:
        if not self.checkpoint.exists():
            return _State()
        try:
            saved = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        except Exception as exc:  # a checkpoint is only ever replaced whole: this is outside damage
            raise UserError(f"{self.checkpoint}: not a readable checkpoint ({type(exc).__name__}); delete it to "
                            "train the supernet from scratch") from None
        if saved.get("fingerprint") != self.fingerprint:
            old, new = json.loads(saved.get("fingerprint") or "{}"), json.loads(self.fingerprint)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(f"{self.checkpoint} was made with other settings ({', '.join(changed)}); rerun with the "
                            "same config to resume, or pass --restart")
        self.net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        s = saved["state"]
        log.info("resuming supernet training at epoch %d step %d", s["epoch"] + 1, s["step"] + 1)
        return _State(s["epoch"], s["step"], s["seconds"], tuple(s["sums"]), list(s["history"]))
