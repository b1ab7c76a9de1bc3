"""``hwnas compress FILE.onnx`` and ``hwnas compress FILE.py:CALLABLE``: compress a user's own model
with a recipe for a device, write the files with their measured figures and a report."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from compress.recipe import load_recipe
from nas.cli.own_cost import load_from_args
from nas.core.config import DATASETS, DataConfig
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.data.splits import Splits, load_raw, split
from nas.deploy.contract import CONTRACT_KEY
from nas.deploy.own_model import OwnModel
from nas.hardware.profiles import load_profile
from nas.search.own_compress import CompressedModel, compress_model
from nas.search.own_search import RecipeSpace, parse_budgets, search_recipes


def _floats(flag: str, text: str, n: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, n) or (flag == "--std" and min(values) <= 0):
        raise UserError(f"{flag} {text!r} not allowed; allowed: 1 or {n} comma-separated numbers"
                        + (" > 0" if flag == "--std" else ""))
    return values * n if len(values) == 1 else values


def _normalisation(args: argparse.Namespace, channels: int) -> dict[str, tuple[float, ...]]:
    """mean and std from --contract (a deploy contract JSON, or a model's metadata holding one) or
    --mean/--std; empty: the training split's own statistics."""
    if args.contract:
        try:
            data = json.loads(Path(args.contract).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"--contract {args.contract}: not a readable JSON file ({exc})") from exc
        data = json.loads(data[CONTRACT_KEY]) if isinstance(data, dict) and CONTRACT_KEY in data else data
        if not isinstance(data, dict) or "mean" not in data or "std" not in data:
            raise UserError(f"--contract {args.contract}: allowed: an hwnas.preprocess contract with mean and std")
        return {"mean": tuple(map(float, data["mean"])), "std": tuple(map(float, data["std"]))}
    out = {}
    if args.mean:
        out["mean"] = _floats("--mean", args.mean, channels)
    if args.std:
        out["std"] = _floats("--std", args.std, channels)
    return out


def load_data(args: argparse.Namespace) -> Splits:
    """The dataset --data names (a dataset name, or an image folder or .tar.gz), split as searches split."""
    if not args.data:
        raise UserError(f"--data is required: one of {', '.join(d for d in DATASETS if d != 'image-folder')}, or an "
                        "image folder / .tar.gz with train/ and test/ class folders")
    cfg = (DataConfig(dataset=args.data) if args.data in DATASETS and args.data != "image-folder" else
           DataConfig(dataset="image-folder", dir=args.data))
    splits = split(load_raw(cfg, cache_dir=Path("runs") / ".cache"), val_fraction=cfg.val_fraction, seed=args.seed)
    norm = _normalisation(args, splits.x_train.shape[-1])
    p = splits.preprocess
    preprocess = dataclasses.replace(p, mean=norm.get("mean", p.mean), std=norm.get("std", p.std))
    return dataclasses.replace(splits, preprocess=preprocess)


def _row(name: str, f: dict[str, Any]) -> str:
    pred = f.get("predicted") or {}
    latency = "" if pred.get("latency_ms") is None else f", {pred['latency_ms']:.4g} ms predicted on {pred['profile']}"
    host = "" if f.get("host_latency_ms") is None else f", {f['host_latency_ms']:.4g} ms on this host"
    return f"  {name:20s} test {100 * f['test_accuracy']:.2f}% ({f['runtime']}), {f['bytes']:,} bytes{host}{latency}"


def write_outputs(result: CompressedModel, out: Path) -> None:
    """The files (the original's reference export left out), report.json and report.md, each written whole."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in result.files.items():
        if name != "original.onnx":
            write_atomic(out / name, data)
    r = result.report
    write_atomic(out / "report.json", (json.dumps(r, indent=1, default=str) + "\n").encode())
    lines = [f"# {r['model']} compressed for {r['profile']}", "", f"Recipe `{r['recipe']}`", "",
             "| file | test accuracy | bytes | host ms | predicted ms (profile) |", "|---|---|---|---|---|"]
    for name, f in r["files"].items():
        pred = (f.get("predicted") or {}).get("latency_ms")
        host = f.get("host_latency_ms")
        lines.append(f"| {name} | {100 * f['test_accuracy']:.2f}% | {f['bytes']:,} | "
                     f"{'-' if host is None else f'{host:.4g}'} | {'-' if pred is None else f'{pred:.4g}'} |")
    lines += ["", *r["notes"], ""]
    write_atomic(out / "report.md", "\n".join(lines).encode())


def _stem(own: OwnModel) -> str:
    """A folder name for the model: the file's stem, with the callable's name for FILE.py:CALLABLE."""
    file, _, attr = own.name.partition(":")
    return Path(file).stem + (f"-{attr}" if attr else "")


def _search(args: argparse.Namespace, own: OwnModel, splits: Splits) -> int:
    if args.recipe:
        raise UserError("give --recipe or --search, not both")
    if args.trials < 1 or args.finetune_iters < 0:
        raise UserError("--trials must be >= 1 and --finetune-iters >= 0")
    profile = load_profile(args.profile or "cpu")
    space = RecipeSpace(budgets=parse_budgets(args.budget), finetune_iters=args.finetune_iters)
    stem = _stem(own)
    out = Path(args.out or Path("compressed") / f"{stem}-search-{profile.name}")
    print(f"hwnas compress {own.name} --search on {profile.tag}: {args.trials} trials, budgets "
          f"{dict(space.budgets) or 'none'}; study {out / 'study.db'} (optuna-dashboard sqlite:///{out / 'study.db'})",
          flush=True)
    front = search_recipes(own, splits, profile, out, trials=args.trials, space=space, seed=args.seed,
                           say=lambda line: print(line, flush=True))
    print(f"front: {len(front)} rows (validation accuracy, latency on {profile.tag}, file size)")
    if len(front):
        print(front[["trial", "val_accuracy", "test_accuracy", "latency_ms", "latency_kind", "file_bytes", "file"]]
              .to_string(index=False))
    print(f"wrote {out / 'front.csv'}, {out / 'front.md'}, files under {out / 'trials'}")
    return 0


def cmd_compress_own(args: argparse.Namespace) -> int:
    if args.search:
        return _search(args, load_from_args(args, args.model_dir), load_data(args))
    if not args.recipe:
        raise UserError("--recipe is required (or --search to explore recipes)")
    recipe = load_recipe(args.recipe)
    own: OwnModel = load_from_args(args, args.model_dir)
    splits = load_data(args)
    stem = _stem(own)
    out = Path(args.out or Path("compressed") / f"{stem}-{hashlib.sha1(recipe.to_json().encode()).hexdigest()[:8]}")
    print(f"hwnas compress {own.name} ({own.source}): recipe {recipe.to_json()}", flush=True)
    result = compress_model(own, splits, recipe, profile=args.profile or "cpu", formats=tuple(args.format or ["onnx"]),
                            seed=args.seed)
    r = result.report
    if r["prune"] is not None:
        p = r["prune"]
        print(f"  pruned {p['cost']} {p['before']:.4g} -> {p['after']:.4g}" + (
            "" if p["target"] is None else f" (target {p['target']:.4g}{'' if p['met'] else ', NOT MET'})")
            + "".join(f"\n  left dense: {n}: {why}" for n, why in p["left_dense"].items()))
    for name, f in r["files"].items():
        print(_row(name, f))
    write_outputs(result, out)
    print(f"  speedup {r['speedup']:.2f}x on this host, {r['size_ratio']:.2f}x smaller than the original\n"
          f"  wrote {out}: {', '.join(n for n in result.files if n != 'original.onnx')}, report.json, report.md")
    return 0
