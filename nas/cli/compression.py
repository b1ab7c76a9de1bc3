"""``hwnas compress``: apply a recipe to a trained model of a run and report before and after."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from compress.recipe import load_recipe
from compress.report import compress, summary_line, write_report
from nas.core.errors import UserError
from nas.deploy.export import read_metadata
from nas.search.record import CandidateResult
from nas.search.run_folder import inside
from nas.search.study import load_run_config, load_splits
from nas.space.arch import parse
from nas.space.builder import build


def _trained_model_files(model_dir: Path) -> tuple[Path, Path, str]:
    """(run folder, weights file, arch) of a trial folder (``trials/<n>``) or model folder (``models/<n>``)."""
    run_dir = next((p for p in list(model_dir.parents)[:3] if (p / "config.yaml").is_file()), None)
    if not model_dir.is_dir() or run_dir is None:
        raise UserError(f"{model_dir} is not a model folder of a run; allowed: runs/<name>/trials/<n> or "
                        f"runs/<name>/models/<n>")
    weights = model_dir / "weights.pt"
    if not weights.is_file() and (model_dir / "metrics.json").is_file():
        stored = CandidateResult.from_attrs(json.loads((model_dir / "metrics.json").read_text()))
        weights = run_dir / (stored.weights_path or "")
    if not weights.is_file() or not (model_dir / "model.onnx").is_file():
        raise UserError(f"{model_dir} lacks model.onnx or trained weights (weights.pt); compress takes trained "
                        f"trials of hwnas search")
    return run_dir, weights, read_metadata(model_dir / "model.onnx")["hwnas.arch"]


def cmd_compress(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    model_dir = Path(args.model_dir)
    run_dir, weights, arch = _trained_model_files(model_dir)
    name = args.name or "recipe-" + hashlib.sha1(recipe.to_json().encode()).hexdigest()[:8]
    out = inside(model_dir / "compressed", name)  # checked before any work
    cfg = load_run_config(run_dir)
    spec = parse(arch)
    model = build(spec)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    print(f"hwnas compress {model_dir}: {arch}\n  recipe {recipe.to_json()}", flush=True)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    result = compress(model.eval(), spec, recipe, splits, seed=cfg.seed)
    write_report(result, out, name=name, recipe=recipe)
    print(f"  {summary_line(result.report)}\n  wrote {out}/model.onnx, report.json, report.md")
    return 0
