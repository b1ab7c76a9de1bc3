"""``hwnas compress``: apply a recipe to a trained model of a run and report before and after."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
from pathlib import Path

from compress.recipe import load_recipe
from compress.report import compress, summary_line, write_report
from nas.core.errors import UserError
from nas.deploy.export import read_metadata
from nas.deploy.own_model import is_model_ref
from nas.hardware.profiles import load_profile
from nas.search.compress_target import target_figures
from nas.search.record import CandidateResult
from nas.search.run_folder import inside
from nas.search.study import load_run_config, load_splits
from nas.space.arch import parse
from nas.space.builder import build
from nas.train.weights import load_into


def _trained_model_files(model_dir: Path) -> tuple[Path, Path, str]:
    """(run folder, weights file, arch) of a trial folder (``trials/<n>``) or model folder
    (``models/<n>``, whatever file kinds its target runs: the arch is read from metrics.json or
    arch.txt, the weights from the trial the record names)."""
    run_dir = next((p for p in list(model_dir.parents)[:3] if (p / "config.yaml").is_file()), None)
    if not model_dir.is_dir() or run_dir is None:
        raise UserError(f"{model_dir} is not a model folder of a run; allowed: runs/<name>/trials/<n> or "
                        f"runs/<name>/models/<n>")
    weights, arch = model_dir / "weights.pt", None
    if (model_dir / "metrics.json").is_file():
        stored = CandidateResult.from_attrs(json.loads((model_dir / "metrics.json").read_text()))
        weights = weights if weights.is_file() else run_dir / (stored.weights_path or "")
        arch = stored.arch
    elif (model_dir / "arch.txt").is_file():
        arch = (model_dir / "arch.txt").read_text().strip()
    elif (model_dir / "model.onnx").is_file():
        arch = read_metadata(model_dir / "model.onnx")["hwnas.arch"]
    if not weights.is_file() or arch is None:
        raise UserError(f"{model_dir} lacks trained weights (weights.pt) or its architecture (metrics.json, "
                        f"arch.txt or model.onnx); compress takes trained trials of hwnas search")
    return run_dir, weights, arch


def cmd_compress(args: argparse.Namespace) -> int:
    if is_model_ref(args.model_dir):
        return int(importlib.import_module("nas.cli.own_compress").cmd_compress_own(args))
    if not args.recipe:
        raise UserError("--recipe is required")
    recipe = load_recipe(args.recipe)
    model_dir = Path(args.model_dir)
    run_dir, weights, arch = _trained_model_files(model_dir)
    name = args.name or "recipe-" + hashlib.sha1(recipe.to_json().encode()).hexdigest()[:8]
    out = inside(model_dir / "compressed", name)  # checked before any work
    cfg = load_run_config(run_dir)
    spec = parse(arch)
    model = build(spec)
    load_into(model, weights, "the weights.pt of a trained trial")
    print(f"hwnas compress {model_dir}: {arch}\n  recipe {recipe.to_json()}", flush=True)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    result = compress(model.eval(), spec, recipe, splits, seed=cfg.seed)
    profile = load_profile(cfg.search.profile)
    target = target_figures(cfg, profile, spec, model.eval(), result.module, recipe, splits, out, seed=cfg.seed)
    result.report["target"] = {"profile": profile.tag, "files": target.files, "unwritten": target.unwritten,
                               "latency": target.latency}
    write_report(result, out, name=name, recipe=recipe)
    print(f"  host: {summary_line(result.report)}", *target.lines(),
          f"  wrote {out}: model.onnx{''.join(', ' + Path(f['path']).name for f in target.files.values())}, "
          "report.json, report.md", sep="\n")
    return 0
