"""Bring your own model, over a corpus of architectures with random weights: is each priced on every
bundled profile, pruned to 50% of MACs and exported, and quantized to int8, without a traceback?

    .venv/bin/python benchmarks/own_model_corpus.py [--resolution 64]

The corpus: the plain-PyTorch models of tests/own_models.py (written without hwnas's grammar:
residual, EfficientNet/MobileNetV3-style with SE and SiLU/hard-swish, RegNet with grouped and
dilated convs, Inception concat, a ViT block with hand-written attention, torch's own
nn.MultiheadAttention, ConvNeXt, DenseNet) and the well-known families of ``hwnas zoo`` built as
plain modules and handed over as ONNX files or modules, as a user would (the steps below do not
know where they came from). Each step's outcome is one of: ok; a one-line refusal naming the op or
layer (counted as handled); a traceback (a failure). Writes benchmarks/results/own_model_corpus.md
and .json.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from results_page import record_run
from compress.graph_prune import prune_any
from compress.quantize import quantize_int8_static
from nas.core.errors import UserError
from nas.cost.costs import count_macs
from nas.deploy.host_latency import session
from nas.deploy.own_model import OwnModel, from_module, module_to_onnx
from nas.hardware.own_pricing import price_own
from nas.hardware.profiles import bundled_profiles, load_profile
from nas.space.builder import build
from nas.space.zoo import zoo_entries

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import own_models  # noqa: E402 - the plain models live with the tests

RESULTS = ROOT / "benchmarks" / "results"
ZOO = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v1", "shufflenet_v2",
       "resnet18", "resnet50", "mnasnet_a1", "vgg11", "squeezenet1_1", "efficientnet_lite0", "googlenet", "mixnet_s",
       "efficientnet_edgetpu_s")


def corpus(resolution: int) -> dict[str, Callable[[], nn.Module]]:
    models: dict[str, Callable[[], nn.Module]] = {f"plain/{k}": v for k, v in own_models.ALL.items()}
    chosen: dict[str, Any] = {}
    for entry in zoo_entries(classes=10, in_chs=3, resolution=resolution):  # each family at width 1 (else its first)
        if entry.family in ZOO and (entry.family not in chosen or "_1x_" in entry.name
                                    and "_1x_" not in chosen[entry.family].name):
            chosen[entry.family] = entry
    for family in ZOO:
        models[f"zoo/{family}"] = functools.partial(build, chosen[family].spec)
    return models


def _step(fn: Callable[[], str]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        return {"outcome": "ok", "detail": fn(), "seconds": round(time.perf_counter() - start, 2)}
    except UserError as exc:
        return {"outcome": "refused", "detail": str(exc), "seconds": round(time.perf_counter() - start, 2)}
    except Exception as exc:  # noqa: BLE001 - what the benchmark counts: a traceback
        return {"outcome": "traceback", "detail": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(limit=-4), "seconds": round(time.perf_counter() - start, 2)}


def price_everywhere(own: OwnModel) -> str:
    priced, reasons = 0, []
    for name in sorted(bundled_profiles()):
        profile = load_profile(name)
        calibrated = list(profile.model or ())
        precision = "fp32" if not calibrated or "fp32" in calibrated else calibrated[0]
        p = price_own(own, profile, precision=precision)
        if p.latency_ms is not None:
            priced += 1
        else:
            reasons.append(f"{name}: {p.latency_how[:100]}")
    return f"{priced}/{len(bundled_profiles())} profiles priced" + (f"; {'; '.join(reasons)}" if reasons else "")


def prune_half(model: nn.Module, shape: tuple[int, ...]) -> str:
    x = torch.zeros(shape)
    pruned, outcome = prune_any(model, x, keep=0.5, cost=lambda m: float(count_macs(m, x)), cost_name="macs",
                                round_to=None)
    module_to_onnx(pruned, shape)  # exported
    dense = [n for n, why in outcome.left_dense.items() if why != "the classifier's outputs"]
    return (f"MACs {outcome.after / outcome.before:.2f} of the original ({'met' if outcome.met else 'NOT MET'})"
            + (f"; left dense: {', '.join(dense[:4])}" + (" ..." if len(dense) > 4 else "") if dense else ""))


def int8(own: OwnModel) -> str:
    calibration = np.random.default_rng(0).standard_normal((8, *own.input_shape[1:])).astype(np.float32)
    data = quantize_int8_static(own.onnx_bytes, calibration)
    sess = session(data, threads=1)
    sess.run(None, {sess.get_inputs()[0].name: calibration[:1]})
    return f"int8 QDQ ONNX {len(data):,} bytes, runs in onnxruntime"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64, help="input side of the zoo networks (default 64)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows: list[dict[str, Any]] = []
    for name, make in corpus(args.resolution).items():
        torch.manual_seed(0)
        model = make().eval()
        shape = (1, 3, 32, 32) if name.startswith("plain/") else (1, 3, args.resolution, args.resolution)
        own = from_module(model, shape[1:], name)
        row: dict[str, Any] = {"model": name, "input": list(shape), "cost": _step(lambda: price_everywhere(own)),
               "prune50": _step(lambda: prune_half(model, shape)), "int8": _step(lambda: int8(own))}
        rows.append(row)
        print(name, *(f"{k}={row[k]['outcome']}" for k in ("cost", "prune50", "int8")), flush=True)
    write(rows, args.resolution)
    record_run("own_model_corpus")


def write(rows: list[dict[str, Any]], resolution: int) -> None:
    steps = ("cost", "prune50", "int8")
    share = {s: sum(r[s]["outcome"] != "traceback" for r in rows) / len(rows) for s in steps}
    (RESULTS / "own_model_corpus.json").write_text(json.dumps(
        {"models": len(rows), "zoo_resolution": resolution, "without_traceback": share, "rows": rows}, indent=1) + "\n")
    lines = ["# Own models: a corpus through pricing, pruning to 50% MACs, and int8", "",
             f"{len(rows)} models with random weights (plain PyTorch at 32x32; zoo families at {resolution}x{resolution}). "
             "Share without a traceback: " + ", ".join(f"{s} {100 * v:.0f}%" for s, v in share.items()) +
             " (target >= 90% each).", "", "| model | cost | prune to 50% MACs | int8 |", "|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[s]['outcome']}: {r[s]['detail'][:140]}" for s in steps]
        lines.append(f"| {r['model']} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    (RESULTS / "own_model_corpus.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
