"""Which PyTorch -> full-integer int8 TFLite route hwnas uses, decided by measurement.

Routes measured on the same trained networks, the same 256 calibration images and the same test
images, each file run in the LiteRT interpreter:

- ``litert-torch PT2E``: PyTorch 2 export quantization (litert-torch's PT2EQuantizer, symmetric
  per-channel weights, static activations) converted by litert-torch;
- ``litert-torch + AI Edge Quantizer``: litert-torch's fp32 conversion, then ai-edge-quantizer's
  static int8 recipe (static_wi8_ai8) calibrated on the same images.

Both routes are hwnas's own (nas.deploy.tflite_int8): neither wins on every network, so an int8
export makes both and keeps the one with the better validation accuracy.

onnx2tf (ONNX -> TensorFlow -> TFLite) is not measured: it needs TensorFlow (a further ~600 MB),
which no other part of hwnas needs.

    .venv/bin/python benchmarks/tflite_converters.py [--run runs/bench-finals] [--trials 3]

Needs a search run with trained trials (benchmarks/finals.py makes runs/bench-finals). Writes
benchmarks/results/tflite_converters.md and .csv.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from results_page import record_run
from nas.data.splits import Preprocess, Splits
from nas.deploy import tflite
from nas.deploy.artifacts import calibration_images
from nas.deploy.edgetpu import check_edgetpu
from nas.deploy.export import DeployInfo
from nas.search.study import load_run_config, load_splits
from nas.space.arch import parse
from nas.space.builder import build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _measure(name: str, data: bytes, seconds: float, splits: Splits, pre: Preprocess, resolution: int,
             n_test: int) -> dict[str, Any]:
    x_test, y_test = splits.x_test[:n_test], splits.y_test[:n_test]
    it = tflite.interpreter(data)
    readiness = check_edgetpu(data)
    latency = tflite.measure_tflite_latency(data, threads=1)
    return {"route": name, "convert_s": round(seconds, 2), "bytes": len(data),
            "test_accuracy": tflite.tflite_accuracy(data, x_test, y_test, preprocess=pre, resolution=resolution),
            "input_dtype": np.dtype(it.get_input_details()[0]["dtype"]).name,
            "output_dtype": np.dtype(it.get_output_details()[0]["dtype"]).name,
            "edgetpu_ready": readiness.ready, "edgetpu_cpu_ops": len(readiness.cpu_ops),
            "edgetpu_note": "" if readiness.ready else readiness.summary(),
            "litert_latency_ms": round(latency.median_ms, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(ROOT / "runs" / "bench-finals"))
    parser.add_argument("--trials", type=int, default=3, help="how many front trials (those with ir blocks first)")
    parser.add_argument("--trial", type=int, nargs="+", help="these trials instead (e.g. those with grouped convs)")
    parser.add_argument("--test-images", type=int, default=10000)
    args = parser.parse_args()
    tflite.require()
    torch.set_num_threads(1)
    run_dir = Path(args.run)
    cfg = load_run_config(run_dir)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    pre = splits.preprocess
    front = pd.read_csv(run_dir / "front.csv")
    front = front[front.source == "search"]
    front = front[front.trial.isin(args.trial)] if args.trial else front.head(args.trials)
    rows = []
    for row in front.to_dict("records"):
        spec = parse(str(row["arch"]))
        model = build(spec)
        model.load_state_dict(torch.load(run_dir / "trials" / f"{int(row['trial']):04d}" / "weights.pt", weights_only=True))
        model.eval()
        info = DeployInfo.for_arch(spec, pre, splits.classes)
        calibration = calibration_images(splits, 256, 0)
        for name, make in (("fp32 (litert-torch)", lambda: tflite.to_tflite(model, info, precision="fp32")),
                           ("int8 litert-torch PT2E",
                            lambda: tflite.to_tflite(model, info, precision="int8", calibration=calibration,
                                                     preprocess=pre, route="pt2e")),
                           ("int8 litert-torch fp32 + AI Edge Quantizer static_wi8_ai8 (hwnas)",
                            lambda: tflite.to_tflite(model, info, precision="int8", calibration=calibration,
                                                     preprocess=pre))):
            started = time.perf_counter()
            data = make()
            r = _measure(name, data, time.perf_counter() - started, splits, pre, spec.resolution, args.test_images)
            rows.append({"trial": row["trial"], "macs": row["macs"], **r})
            print(f"trial {row['trial']} {name}: {100 * float(r['test_accuracy']):.2f}% {r['bytes']} B "
                  f"{r['convert_s']} s, Edge TPU ready {r['edgetpu_ready']}", flush=True)
    table = pd.DataFrame(rows)
    fp32 = table[table.route.str.startswith("fp32")].set_index("trial").test_accuracy
    table["drop_points_vs_fp32"] = [round(100 * (fp32[t] - a), 2) for t, a in zip(table.trial, table.test_accuracy)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "tflite_converters.csv", index=False)
    summary = table.groupby("route").agg(median_drop_points=("drop_points_vs_fp32", statistics.median),
                                         median_convert_s=("convert_s", statistics.median),
                                         all_edgetpu_ready=("edgetpu_ready", "all")).reset_index()
    lines = ["# PyTorch -> int8 TFLite: converter routes measured", "",
             f"Command: `.venv/bin/python benchmarks/tflite_converters.py "
             f"{'--trial ' + ' '.join(map(str, args.trial)) if args.trial else '--trials ' + str(args.trials)}` "
             "on runs/bench-finals "
             f"(quickstart search, proxy-trained trials), {args.test_images} Fashion-MNIST test images, every file run "
             "in the LiteRT interpreter (XNNPACK, 1 thread); latency median of 200 runs, batch 1, side by side in "
             "one process.", "", summary.to_markdown(index=False), "", table.to_markdown(index=False), "",
             "onnx2tf (ONNX -> TensorFlow -> TFLite) was not measured: it needs TensorFlow, which nothing else in "
             "hwnas needs.", ""]
    (RESULTS / "tflite_converters.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'tflite_converters.md'}")
    return 0


if __name__ == "__main__":
    code = main()
    record_run("tflite_converters")  # the date benchmarks/results_page.py shows
    sys.exit(code)
