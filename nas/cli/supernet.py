"""``hwnas supernet train`` and ``hwnas supernet info``: a weight-sharing supernet over a config's space."""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nas.cli._run import EXIT_INTERRUPTED
from nas.core.config import SearchConfig, load_search_config
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.search.on_supernet import default_supernet_dir, supernet_path, supernet_space
from nas.search.study import load_splits
from nas.space.kinds import elastic_kinds
from nas.supernet.derive import DerivedSpace
from nas.supernet.inherit import accuracy, recalibrate_bn
from nas.supernet.net import Supernet
from nas.supernet.space import SupernetSpace
from nas.supernet.store import load_supernet, save_supernet
from nas.supernet.training import StepReport, SupernetTrainer
from nas.train.trainer import pick_device


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _printer(every: int) -> Callable[[StepReport], None]:
    def show(r: StepReport) -> None:
        if r.step % every == 0 or r.step == r.steps:
            print(f"epoch {r.epoch}/{r.epochs} step {r.step}/{r.steps}  loss largest {r.loss_largest:.4f}  distilled "
                  f"{r.loss_distilled:.4f}  elapsed {_clock(r.seconds)}  ETA {_clock(r.eta_s)}", flush=True)
    return show


def _print_space(cfg: SearchConfig, derived: DerivedSpace) -> None:
    """Say what the supernet leaves out of the search space (derive), or why the space as written
    will train poorly (given)."""
    notes = derived.notes
    if not notes:
        return
    if cfg.supernet.space == "derive":
        print("supernet space derived from space and search.budgets (supernet.space: derive): " + "; ".join(notes),
              flush=True)
    else:
        print("warning: supernet.space: given keeps a space too wide for shared weights to rank subnetworks ("
              + "; ".join(notes) + "); supernet.space: derive leaves these out", flush=True)


def cmd_supernet_train(args: argparse.Namespace) -> int:
    cfg = load_search_config(args.config)
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, supernet=dataclasses.replace(cfg.supernet, epochs=args.epochs))
    out = Path(args.out) if args.out else default_supernet_dir(cfg.name)
    pick_device(cfg.supernet.device)  # cuda without a GPU: refused before reading data
    splits = load_splits(cfg, cache_dir=out.parent / ".cache")
    in_chs, classes = splits.preprocess.channels, len(splits.classes)
    derived = supernet_space(cfg, in_chs=in_chs, num_classes=classes)
    _print_space(cfg, derived)
    space = SupernetSpace(derived.space, in_chs=in_chs, num_classes=classes)
    torch.manual_seed(cfg.seed)
    net = Supernet(space)
    checkpoint = out / "checkpoint.pt"
    if args.restart:
        checkpoint.unlink(missing_ok=True)
    trainer = SupernetTrainer(net, splits, cfg.supernet, seed=cfg.seed, checkpoint=checkpoint,
                              budgets=cfg.search.budgets, on_step=_printer(max(1, args.print_every)))
    params = sum(p.numel() for p in net.parameters())
    print(f"hwnas supernet train {cfg.name}: {params / 1e6:.2f} M weights over block types "
          f"{', '.join(sorted({k for s in space.cfg.stages for k in (s.block_types or space.cfg.block_types)}))} "
          f"(elastic: {', '.join(elastic_kinds())}); {cfg.supernet.epochs} epochs x {trainer.steps} steps of "
          f"{cfg.supernet.batch_size} images, sandwich rule with {cfg.supernet.random_subnets} random subnetworks "
          f"({cfg.supernet.sampling} sampling), one resolution per batch; "
          f"largest {space.largest().format()}; smallest {space.smallest().format()}; checkpoint {checkpoint}",
          flush=True)
    try:
        history = trainer.run()
    except KeyboardInterrupt:
        print(f"interrupted; training resumes from {checkpoint} (written every epoch and every "
              f"{cfg.supernet.checkpoint_minutes:g} min): run the same command")
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:
        raise UserError(str(exc)) from None
    seconds = history[-1]["seconds"] if history else 0.0
    meta = {"config": cfg.name, "seed": cfg.seed, "epochs": cfg.supernet.epochs, "train_seconds": seconds,
            "history": history, "train_images": len(trainer.labels), "weights": params,
            "supernet": dataclasses.asdict(cfg.supernet)}
    path = out / "supernet.pt"
    sha = save_supernet(path, net, splits, meta)
    checks = {}
    for name, spec in (("largest", space.largest()), ("smallest", space.smallest())):
        model = net.extract(spec)
        recalibrate_bn(model, splits.x_train, splits.preprocess, spec.resolution, n_images=cfg.supernet.bn_images,
                       seed=cfg.seed)
        checks[name] = accuracy(model, splits.x_val, splits.y_val, splits.preprocess, spec.resolution)
    write_atomic(out / "training.json", (json.dumps({**meta, "sha256": sha, "val_accuracy_pytorch": checks},
                                                    indent=2) + "\n").encode())
    print(f"supernet: {path} (sha256 {sha[:16]}), trained in {_clock(seconds)}; inherited validation accuracy "
          f"(PyTorch, BatchNorm re-estimated): largest {100 * checks['largest']:.2f}%, smallest "
          f"{100 * checks['smallest']:.2f}%. Search it with search.strategy: supernet "
          f"(search.supernet: {path})")
    return 0


def cmd_supernet_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file() and not path.suffix:
        path = supernet_path(load_search_config(args.path))
    sn = load_supernet(path)
    space = sn.net.space
    print(f"{sn.describe()}: {sn.dataset}, {len(sn.classes)} classes, "
          f"{sum(p.numel() for p in sn.net.parameters()) / 1e6:.2f} M weights")
    print(f"largest:  {space.largest().format()}\nsmallest: {space.smallest().format()}")
    rng = np.random.default_rng(0)
    print(f"a random subnetwork: {space.random(rng).format()}")
    print(json.dumps({k: v for k, v in sn.meta.items() if k != "history"}, indent=2))
    return 0
