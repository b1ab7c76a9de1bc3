"""Compress a trained network and report what the exported file does before and after: test
accuracy (onnxruntime), file size, MACs, parameters, weight memory and host latency, the
latencies measured side by side in one process; and the report files ``hwnas compress`` writes."""
from __future__ import annotations

import copy
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress.pipeline import Applied, apply_recipe, deployed_weight_mb
from compress.prune import parameter_count
from compress.recipe import Recipe
from nas.cost.costs import count_costs, count_macs
from nas.data.splits import Splits
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import measure_latency
from nas.space.arch import ArchSpec
from nas.space.builder import Net


@dataclass
class Compressed:
    onnx: bytes
    module: nn.Module  # the compressed float network (before quantization)
    report: dict[str, Any]


def _figures(blob: bytes, module: nn.Module, spec: ArchSpec, splits: Splits, precision: str,
             applied: Applied) -> dict[str, Any]:
    x = torch.zeros(1, spec.in_chs, spec.resolution, spec.resolution)
    weight_mb = count_costs(spec, precision=precision, model=module).weight_mb
    return {"test_accuracy": onnx_accuracy(blob, splits.x_test, splits.y_test, preprocess=splits.preprocess,
                                           resolution=spec.resolution),
            "file_bytes": len(blob), "gzip_bytes": len(gzip.compress(blob, 9)), "macs": count_macs(module, x),
            "parameters": parameter_count(module), "weight_mb": deployed_weight_mb(weight_mb, applied)}


def compress(model: Net, spec: ArchSpec, recipe: Recipe, splits: Splits, *, seed: int = 0,
             threads: int = 1, repeats: int = 200) -> Compressed:
    """Compress a trained ``model`` (left untouched) and report before and after."""
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    base = copy.deepcopy(model).eval()
    with torch.no_grad():
        base_onnx = to_onnx(base, info)
    out, work, applied = apply_recipe(model, spec, recipe, splits, seed=seed)
    b = _figures(base_onnx, base, spec, splits, "fp32", Applied())
    c = _figures(out, work, spec, splits, recipe.precision, applied)
    # latency side by side, alternating, so drift on a shared machine hits both alike
    times: dict[str, list[float]] = {"baseline": [], "compressed": []}
    for _ in range(3):
        for name, blob in (("baseline", base_onnx), ("compressed", out)):
            times[name].append(measure_latency(blob, shape, threads=threads, repeats=repeats).median_ms)
    b["latency_ms"], c["latency_ms"] = float(np.median(times["baseline"])), float(np.median(times["compressed"]))
    report: dict[str, Any] = {
        "arch": spec.format(), "recipe": json.loads(recipe.to_json()), "precision": recipe.precision,
        "baseline": b, "compressed": c,
        "accuracy_drop_points": 100 * (b["test_accuracy"] - c["test_accuracy"]),
        "size_ratio": b["file_bytes"] / c["file_bytes"], "macs_ratio": c["macs"] / b["macs"],
        "latency_ratio": c["latency_ms"] / b["latency_ms"], "speedup": b["latency_ms"] / c["latency_ms"],
        "latency_how": (f"onnxruntime CPU on this host, batch 1, {threads} thread(s), median of 3 alternating "
                        f"medians of {repeats} runs each"),
        **applied.report(),
    }
    if recipe.quantize is not None and recipe.quantize.mode != "fp16":
        report["macs_note"] = "MACs count multiply-adds whatever their precision; int8 ones are cheaper"
    return Compressed(onnx=out, module=work, report=report)


def summary_line(report: dict[str, Any]) -> str:
    """One line of before -> after figures."""
    b, c = report["baseline"], report["compressed"]
    return (f"accuracy {100 * b['test_accuracy']:.2f}% -> {100 * c['test_accuracy']:.2f}%, file "
            f"{b['file_bytes']:,} -> {c['file_bytes']:,} B ({report['size_ratio']:.2f}x smaller), MACs "
            f"x{report['macs_ratio']:.2f}, latency {b['latency_ms']:.4f} -> {c['latency_ms']:.4f} ms "
            f"({report['speedup']:.2f}x) [{report['latency_how']}]")


def write_report(result: Compressed, out: Path, *, name: str, recipe: Recipe) -> None:
    """``out``/model.onnx, report.json and report.md of one compression."""
    out.mkdir(parents=True, exist_ok=True)
    r = result.report
    (out / "model.onnx").write_bytes(result.onnx)
    (out / "report.json").write_text(json.dumps(r, indent=1) + "\n")
    lines = [f"# {name}", "", f"`{r['arch']}`, recipe `{recipe.to_json()}`", "",
             "| | test accuracy | file bytes | MACs | latency ms |", "|---|---|---|---|---|"]
    for label, row in (("before", r["baseline"]), ("after", r["compressed"])):
        lines.append(f"| {label} | {100 * row['test_accuracy']:.2f}% | {row['file_bytes']:,} | {row['macs']:,} | "
                     f"{row['latency_ms']:.4f} |")
    lines += ["", f"Latency: {r['latency_how']}.", ""]
    target = r.get("target") or {}
    for f in (target.get("files") or {}).values():
        lines.append(f"Target file `{Path(f['path']).name}`: test accuracy {100 * f['test_accuracy']:.2f}% measured "
                     f"on the file by {f['runtime']}, {f['bytes']:,} bytes.")
    lines += [f"Not written: {line}" for line in target.get("unwritten") or []]
    if target.get("latency"):
        lat = target["latency"]
        lines.append(f"Target latency on {lat['profile']}: {lat['before_ms']:.4g} -> {lat['after_ms']:.4g} ms at "
                     f"{lat['precision']} ({lat['how']})" + (f"; {lat['caveat']}" if lat["caveat"] else "") + ".")
    lines.append("")
    (out / "report.md").write_text("\n".join(lines))
