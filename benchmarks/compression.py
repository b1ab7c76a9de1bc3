"""Compression recipes on a MobileNetV2-style CIFAR-10 network trained by hwnas itself.

    .venv/bin/python benchmarks/compression.py [--train-reference] [--only REGEX] [--data ../shared/data/cifar10-jpg.tar.gz]

The reference is trained to convergence by ``hwnas train`` (benchmarks/reference/, committed;
--train-reference runs or resumes that training), then each recipe is applied with
compress.pipeline (pruning with fine-tuning and distillation, onnxruntime quantization) and
writes benchmarks/results/compression.md and compression.csv: test accuracy of the exported file,
file bytes, MACs, and host latency as a ratio to the baseline measured side by side in the same
process. A recipe the product does not have would be listed as not run, never estimated.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from results_page import record_run
from compress.recipe import parse_recipe
from compress.report import compress
from nas.search.study import load_run_config, load_splits
from nas.space.arch import parse
from nas.space.builder import build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# MobileNetV2's block sequence (expansion 6, ReLU6, linear bottlenecks) at width 0.5 for 32x32 inputs,
# with two fewer stride-2 stages than ImageNet (final map 4x4), sized to train in minutes on 2 cores.
REFERENCE = ("in_c3_r32-stem_k3_s2_c16-ir_r1_k3_s1_e1_c8-ir_r2_k3_s1_e6_c16-ir_r3_k3_s2_e6_c16-"
             "ir_r4_k3_s2_e6_c32-ir_r3_k3_s1_e6_c48-ir_r3_k3_s1_e6_c80-ir_r1_k3_s1_e6_c160-head_c640-fc_c10")
KD = {"temperature": 4.0, "alpha": 0.9}
FT = 1000  # fine-tuning iterations (batch 128) after pruning, sparsity and low-rank
QAT = 300
QOP = {"mode": "static", "format": "qoperator", "per_channel": False}  # compact int8: onnxruntime's integer ops
TAYLOR = {"criterion": "taylor", "target_macs": 0.5, "finetune_iters": FT, "distill": KD}
DEFAULT_RECIPE = "int8 PTQ (QDQ, per-channel, minmax)"  # what compression.quantize: [static] samples
RECIPES: dict[str, dict[str, object] | None] = {
    "baseline": {},
    "int8 PTQ (QDQ, per-channel, minmax)": {"quantize": {"mode": "static"}},
    "int8 PTQ (QDQ, per-channel, entropy)": {"quantize": {"mode": "static", "calibration_method": "entropy"}},
    "int8 PTQ (QDQ, per-tensor, minmax)": {"quantize": {"mode": "static", "per_channel": False}},
    "int8 PTQ (QDQ, per-tensor, int8 activations)": {"quantize": {"mode": "static", "per_channel": False,
                                                                   "activations": "int8"}},
    "int8 PTQ (QDQ, per-tensor, int8 activations, power-of-two scales: Vitis AI DPU)": {
        "quantize": {"mode": "static", "per_channel": False, "activations": "int8", "scales": "pof2"}},
    "int8 PTQ (QOperator, per-channel, minmax)": {"quantize": {"mode": "static", "format": "qoperator"}},
    "int8 PTQ (QOperator, per-tensor, minmax)": {"quantize": QOP},
    "int8 dynamic": {"quantize": {"mode": "dynamic"}},
    "fp16": {"quantize": {"mode": "fp16"}},
    "structured L1 to 50% MACs + KD": {"prune": {**TAYLOR, "criterion": "l1"}},
    "structured Taylor to 50% MACs + KD": {"prune": TAYLOR},
    "structured Taylor to 50% MACs, residual streams too, + KD": {"prune": {**TAYLOR, "streams": True}},
    "structured slimming to 50% MACs + KD (600 sparsity-training iterations, L1 1e-4 on BN scales)": {
        "prune": {**TAYLOR, "criterion": "bn", "slimming": 1e-4, "slimming_iters": 600}},
    "structured Taylor to 50% MACs + KD, then int8 (QOperator, per-tensor)": {"prune": TAYLOR, "quantize": QOP},
    "structured Taylor to 38% of parameters + KD, then int8 (QOperator, per-tensor)": {
        "prune": {**{k: v for k, v in TAYLOR.items() if k != "target_macs"}, "target_params": 0.38}, "quantize": QOP},
    **{f"unstructured {int(100 * f)}% per layer (polynomial schedule) + KD": {
        "sparsity": {"final": f, "finetune_iters": FT, "distill": KD}} for f in (0.5, 0.8, 0.9)},
    "weight sharing 4 bits + Huffman": {"share": {"bits": 4}},
    "structured Taylor to 50% MACs + KD, then weight sharing 4 bits + Huffman": {"prune": TAYLOR,
                                                                                 "share": {"bits": 4}},
    "low-rank 1x1 convs, rank 0.5 + fine-tune": {"lowrank": {"rank_ratio": 0.5, "finetune_iters": FT}},
    f"int8 QAT ({QAT} iterations, KD) then static QDQ export": {"quantize": {"mode": "static", "qat_iters": QAT}},
}
# The targets: (target, rows it applies to, test on a row, what the test asks)
TARGETS = [
    ("int8 PTQ", lambda name: name.startswith("int8 PTQ"),
     lambda r: r["accuracy_drop_points"] <= 0.5 and r["size_ratio"] >= 3.5 and r["speedup"] >= 1.8,
     "drop <= 0.5 points, >= 3.5x smaller file, >= 1.8x faster"),
    ("structured pruning to 50% of MACs", lambda name: name.startswith("structured") and "50% MACs" in name
     and "KD" in name and ", then" not in name,
     lambda r: r["accuracy_drop_points"] <= 1.5 and r["speedup"] >= 1.5, "drop <= 1.5 points, >= 1.5x faster"),
    ("structured + int8", lambda name: name.startswith("structured") and "int8" in name,
     lambda r: r["size_ratio"] >= 8, ">= 8x smaller file"),
]


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | asks | recipe | drop (points) | size ratio | speedup | met |", "|---|---|---|---|---|---|---|"]
    for target, applies, test, asks in TARGETS:
        for r in rows:
            if applies(str(r["recipe"])):
                lines.append(f"| {target} | {asks} | {r['recipe']} | {r['accuracy_drop_points']} | "
                             f"{r['size_ratio']} | {r['speedup']} | {'yes' if test(r) else 'no'} |")
    return lines


REFERENCE_RUN = ROOT / "benchmarks" / "reference"
# hwnas train's two stages of the reference (benchmarks/reference/config.yaml): 40 epochs of SGD with
# cosine decay from lr 0.1, then a warm restart of 30 epochs from lr 0.05 (SGDR) from those weights
STAGES = [([], "final"), (["--stage", "restart", "--epochs", "30", "--lr", "0.05"], "final-restart")]


def _reference_dir() -> Path:
    digest = hashlib.sha256(parse(REFERENCE).format().encode()).hexdigest()[:10]
    return REFERENCE_RUN / "models" / f"arch-{digest}"


def train_reference() -> None:
    """Run (or resume) hwnas train on the reference, stage by stage; each is resumable."""
    hwnas = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"]
    previous: Path | None = None
    for extra, folder in STAGES:
        init = ["--init-from", str(previous)] if previous is not None else []
        subprocess.run([*hwnas, "train", str(REFERENCE_RUN), "--arch", REFERENCE, *init, *extra], check=True, cwd=ROOT)
        previous = _reference_dir() / folder / "weights.pt"


def _latest_stage() -> Path:
    for _, folder in reversed(STAGES):
        if (_reference_dir() / folder / "metrics.json").exists():
            return _reference_dir() / folder
    raise SystemExit(f"no trained reference under {_reference_dir()}: run this script with --train-reference "
                     "(hwnas train benchmarks/reference --arch ..., resumable)")


def _describe(stage: Path) -> str:
    m = json.loads((stage / "metrics.json").read_text())
    init = m.get("init_from") or {}
    epochs = len(m["history"]) + len(init.get("history") or [])
    how = ", ".join(f"{k} {v}" for k, v in m["final"].items() if k in ("optimizer", "lr", "schedule", "weight_decay",
                                                                         "augment", "epochs"))
    restart = ", the last stage a warm restart from the previous final" if init else ""
    return (f"trained by `hwnas train` ({epochs} epochs in all{restart}; last stage: {how}), test accuracy "
            f"{100 * m['test_accuracy']:.2f}% measured on its ONNX file ({stage.relative_to(ROOT)})")


Row = dict[str, Any]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 (default: the reference config's data.dir, "
                                        "../shared/data/cifar10-jpg.tar.gz)")
    parser.add_argument("--train-reference", action="store_true",
                        help="train (or resume) the reference with hwnas train first (hours on 2 cores)")
    parser.add_argument("--only", metavar="REGEX",
                        help="run only the recipes whose name matches; rows of other recipes measured on the same "
                             "reference weights are kept from the earlier run")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite compression.md from the rows measured earlier on the same weights")
    return parser.parse_args()


def _row(name: str, report: dict[str, Any], digest: str, seconds: float) -> Row:
    c, b = report["compressed"], report["baseline"]
    return {"recipe": name, "accuracy": round(c["test_accuracy"], 4), "file_bytes": c["file_bytes"],
            "gzip_bytes": c["gzip_bytes"], "encoded_bytes": report.get("share", {}).get("encoded_bytes"),
            "sparsity": report.get("sparsity", {}).get("sparsity"), "macs": c["macs"],
            "latency_ratio": round(report["latency_ratio"], 3),
            "accuracy_drop_points": round(report["accuracy_drop_points"], 2),
            "size_ratio": round(report["size_ratio"], 2), "speedup": round(report["speedup"], 2),
            "baseline_accuracy": b["test_accuracy"], "baseline_latency_ms": round(b["latency_ms"], 4),
            "latency_ms": round(c["latency_ms"], 4), "seconds": round(seconds, 1), "reference_sha256": digest}


def _measure(args: argparse.Namespace, stage: Path, digest: str) -> tuple[list[Row], list[str]]:
    """Every recipe's row: measured now, or kept from an earlier run on the same weights."""
    cfg = load_run_config(REFERENCE_RUN)  # the data and split hwnas train used (benchmarks/reference/config.yaml)
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=args.data))
    splits = load_splits(cfg, cache_dir=REFERENCE_RUN.parent / ".cache")
    spec = parse(REFERENCE)
    model = build(spec)
    model.load_state_dict(torch.load(stage / "weights.pt", weights_only=True))
    model.eval()
    rows: list[Row] = []
    notes: list[str] = []
    csv = RESULTS / "compression.csv"
    previous: list[Row] = [{str(k): v for k, v in r.items()} for r in pd.read_csv(csv).to_dict("records")] \
        if csv.exists() else []
    kept = {str(r["recipe"]): r for r in previous if r.get("reference_sha256") == digest
            and not (args.only and re.search(args.only, str(r["recipe"])))}
    for name, data in RECIPES.items():
        if name in kept:
            rows.append(kept[name])
            continue
        if args.report_only or (args.only and not re.search(args.only, name)):
            continue
        if data is None:
            notes.append(f"- {name}: not run, hwnas does not implement it yet.")
            continue
        t0 = time.perf_counter()
        result = compress(model, spec, parse_recipe(data), splits, seed=0)
        rows.append(_row(name, result.report, digest, time.perf_counter() - t0))
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(csv, index=False)  # each finished recipe is kept if the run is interrupted
    order = {name: i for i, name in enumerate(RECIPES)}
    rows.sort(key=lambda r: order.get(str(r["recipe"]), len(order)))
    return rows, notes


def _beside(rows: list[Row]) -> list[str]:
    """The default int8 recipe beside the best int8 PTQ recipe (size x speed)."""
    default = next((r for r in rows if r["recipe"] == DEFAULT_RECIPE), None)
    ptq = [r for r in rows if str(r["recipe"]).startswith("int8 PTQ")]
    best = max(ptq, key=lambda r: (float(r["speedup"]) * float(r["size_ratio"]), -float(r["accuracy_drop_points"])),
               default=None)
    if default is None or best is None:
        return []
    return ["## Default int8 recipe beside the best", "",
            "| | recipe | drop (points) | size ratio | speedup |", "|---|---|---|---|---|",
            f"| default (compression.quantize: [static]) | {default['recipe']} | {default['accuracy_drop_points']} "
            f"| {default['size_ratio']} | {default['speedup']} |",
            f"| best int8 PTQ (size x speed) | {best['recipe']} | {best['accuracy_drop_points']} | "
            f"{best['size_ratio']} | {best['speedup']} |", ""]


def main() -> int:
    args = _arguments()
    started = time.perf_counter()
    if args.train_reference:
        train_reference()
    stage = _latest_stage()
    digest = hashlib.sha256((stage / "weights.pt").read_bytes()).hexdigest()[:16]
    rows, notes = _measure(args, stage, digest)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "compression.csv", index=False)
    missing = [n for n, d in RECIPES.items() if d is not None and n not in set(table.recipe)]
    if missing:
        notes.append(f"- not yet measured on this reference ({len(missing)}): " + "; ".join(missing)
                     + ". Run `benchmarks/compression.py --only '<name>'` to add them.")
    text = "\n".join([
        "# Compression recipes on a converged MobileNetV2-style CIFAR-10 network", "",
        f"Command: `.venv/bin/python benchmarks/compression.py{' --train-reference' if args.train_reference else ''}"
        f"{f' --only {chr(39)}{args.only}{chr(39)}' if args.only else ''}{' --report-only' if args.report_only else ''}`"
        f"{' (the rows were measured by earlier --only runs on the same weights)' if args.report_only else ''}. "
        f"Reference `{REFERENCE}`, {_describe(stage)}; weights sha256 {digest}. "
        "Accuracy: the exported ONNX file on the 10,000 CIFAR-10 test images with onnxruntime. Latency: "
        "onnxruntime CPU, batch 1, 1 thread, each recipe's file against the baseline, alternating, median of 3 "
        "medians of 200 runs; `latency_ratio` = compressed / baseline (below 1 is faster), `speedup` its inverse. "
        f"Pruning, sparsity and low-rank fine-tune {FT} iterations of batch 128, with the uncompressed model as "
        "teacher (T 4, alpha 0.9) where the name says KD. `gzip_bytes`: the ONNX "
        "file gzip-compressed (where unstructured zeros show). `encoded_bytes`: the Huffman-coded weight-sharing "
        "file (compress.sharing.encode); its ONNX still stores fp32 centroid values. QDQ is the portable int8 "
        "format; QOperator (onnxruntime's integer ops) stores no bias scales or zero points.", "",
        table.drop(columns=["reference_sha256"]).to_markdown(index=False), "", "## The issue's targets", "",
        *_targets(rows), "", *_beside(rows), *notes, "",
        f"This invocation: {time.perf_counter() - started:.0f} s" + (
            f" (the recipes matching `{args.only}`; other rows come from earlier runs on the same weights)."
            if args.only else "."), ""])
    (RESULTS / "compression.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    code = main()
    record_run("compression")  # the date benchmarks/results_page.py shows
    sys.exit(code)
