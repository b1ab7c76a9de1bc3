"""Whole-network latency models of the four devices, scored leave-one-family-out on published figures.

    .venv/bin/python benchmarks/device_latency.py [--data ../shared/data/published_latency_calibration.csv]

For each device, one consistent source (one runtime, one board, one table) is taken from the
published file; its model names are mapped to our zoo families (a row whose published MACs are
more than 6% from our build of the family, or whose family the grammar lacks, is skipped and
counted); the per-layer model is fitted to network totals (nas.hardware.network_fit) and each
family is predicted by a fit on the other families only. Writes
benchmarks/results/device_latency.{md,json}, one scatter PNG per device and precision, and
device_calibration_networks.csv (the mapped rows, the input format of hwnas profile calibrate
--networks).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from nas.cost.costs import count_costs  # noqa: E402
from nas.hardware.network_fit import (  # noqa: E402
    NetworkFitOptions,
    NetworkMeasurement,
    fit_networks,
    leave_one_family_out,
    predict_network,
    read_network_rows,
    score,
    spec_of,
)
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "published_latency_calibration.csv"
MORE_DATA = SHARED_DATA / "published_latency_calibration_more.csv"  # read beside --data when present
Mapped = tuple[str, float, int | None] | None  # (zoo family, width, resolution) or None: not in our zoo


def _res(row: pd.Series) -> int | None:
    text = str(row["resolution"]) if pd.notna(row["resolution"]) else ""
    m = re.match(r"(\d+)x", text)
    return int(m.group(1)) if m else None


def map_coral(row: pd.Series) -> Mapped:
    name, res = str(row["model"]).lower(), _res(row)
    table = {"resnet-50 v1": "resnet50", "resnet-50 v2": "resnet50", "resnet-152 v2": "resnet152",
             "squeezenet": "squeezenet1_0", "vgg16": "vgg16", "vgg19": "vgg19",
             "efficientnet-edgetpu-s*": "efficientnet_edgetpu_s", "efficientnet-edgetpu-m*": "efficientnet_edgetpu_m"}
    return (table[name], 1.0, res) if name in table else None


def map_torchvision(row: pd.Series) -> Mapped:
    m = re.match(r"torchvision\.models\.\w+\.(resnet\d+|squeezenet1_[01]|vgg\d+)(_bn)?$", str(row["model"]))
    return (m.group(1), 1.0, _res(row)) if m else None


def map_mlperf(row: pd.Series) -> Mapped:
    name = str(row["model"])
    if m := re.match(r"efficientnet-lite(\d)-", name):
        return f"efficientnet_lite{m.group(1)}", 1.0, _res(row)
    if m := re.match(r"mobilenet-v3-(large|small)_224_([\d.]+)_", name):
        return f"mobilenet_v3_{m.group(1)}", float(m.group(2)), 224
    return ("resnet50", 1.0, _res(row)) if name == "resnet50" else None


def map_vitis(row: pd.Series) -> Mapped:
    m = re.match(r"(?:pt|tf2?)_([\w-]+?)_imagenet_(\d+)_\d+_(?:(0\.\d+)_)?([\d.]+)([GM])$", str(row["model"]))
    if not m or m.group(3):  # pruned variants (a ratio token) are not the published structure
        return None
    name, res = m.group(1).lower(), int(m.group(2))
    table = {"resnet50": "resnet50", "mlperf_resnet50": "resnet50", "resnetv1_152": "resnet152",
             "resnetv1_101": "resnet101", "resnetv1_50": "resnet50", "vgg16": "vgg16", "vgg19": "vgg19",
             "squeezenet": "squeezenet1_1", "efficientnet-edgetpu-s": "efficientnet_edgetpu_s",
             "efficientnet-edgetpu-m": "efficientnet_edgetpu_m", "efficientnet-edgetpu-l": "efficientnet_edgetpu_l",
             "efficientnet-lite": "efficientnet_lite0"}
    return (table[name], 1.0, res) if name in table else None


def published_macs(row: pd.Series) -> float | None:
    """Multiply-adds a Vitis AI model name states (its FLOPs, 2 per multiply-add)."""
    m = re.search(r"_([\d.]+)([GM])$", str(row["model"]))
    return float(m.group(1)) * (1e9 if m.group(2) == "G" else 1e6) / 2 if m else None


NETSPRESSO = {"MobileNetV3-Small": "mobilenet_v3_small", "MobileNetV3-Large": "mobilenet_v3_large",
              "MixNet-S": "mixnet_s", "MixNet-M": "mixnet_m", "MixNet-L": "mixnet_l", "ResNet-18": "resnet18",
              "ResNet-34": "resnet34", "ResNet-50": "resnet50"}  # EfficientFormer-L1: attention, not in the zoo


def map_jetson_fp16(row: pd.Series) -> Mapped:
    """torch2trt's table (torchvision names) and NetsPresso's JetPack 4.6 TensorRT table."""
    name = str(row["model"])
    return (NETSPRESSO[name], 1.0, _res(row)) if name in NETSPRESSO else map_torchvision(row)


def map_kentaroy(row: pd.Series) -> Mapped:
    return (str(row["model"]), 1.0, _res(row)) if re.fullmatch(r"resnet\d+", str(row["model"])) else None


@dataclass(frozen=True)
class Source:
    """One consistent published source for a profile: its runtime key, rows, name mapping,
    precisions, and the fit's options (NetworkFitOptions fields) by precision."""

    profile: str
    runtime: str
    select: Callable[[pd.DataFrame], pd.Series]
    mapping: Callable[[pd.Series], Mapped]
    precisions: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale_runtime: str = ""  # runtime key of the rows scale_from refers to (default: this one)


EDGETPU = {"on_chip_mb": 8.0, "host_io": True}
SOURCES = [
    Source("edgetpu", "edgetpu-usb-tflite-cpp",
           lambda d: d.runtime.str.contains("C\\+\\+ benchmark") & d.board.str.startswith("USB"), map_coral,
           ("int8",), {"int8": EDGETPU}),
    Source("edgetpu-devboard", "edgetpu-devboard-tflite-cpp",
           lambda d: d.runtime.str.contains("C\\+\\+ benchmark") & (d.board == "Dev Board"), map_coral,
           ("int8",), {"int8": EDGETPU}),
    # Two TensorRT fp16 tables on the Nano that agree on the three ResNets they share within 2-5%
    # (NetsPresso 1.7-4.8% faster): torch2trt's (dense families) and NetsPresso's (JetPack 4.6; the
    # depthwise MobileNetV3 and MixNet), fitted together with a time per op (TensorRT's kernel launches).
    Source("jetson-nano", "tensorrt-fp16", lambda d: d.runtime.str.contains("torch2trt \\(fp16_mode")
           | d.runtime.str.contains("JetPack 4.6, TRT 8"), map_jetson_fp16, ("fp16",), {"fp16": {"gpu_terms": True}}),
    Source("jetson-nano", "tensorrt-kentaroy47", lambda d: d.runtime.str.contains("torch2trt-style"), map_kentaroy,
           ("fp32",), {"fp32": {"scale_from": "fp16", "gpu_terms": True}}, scale_runtime="tensorrt-fp16"),
    Source("raspberry-pi4", "tflite-2.7.1-mlperf", lambda d: d.runtime.str.startswith("TFLite v2.7.1"), map_mlperf,
           ("fp32", "int8"), {"int8": {"scale_from": "fp32"}}),
    Source("zynq-zcu102-dpu", "vitis-ai-3.0", lambda d: d.runtime.str.startswith("Vitis AI 3.0"), map_vitis,
           ("int8",), {"int8": {"host_io": True}}),
]


def family_group(network: str) -> str:
    return re.sub(r"(\d+|_\d_\d|_[sml]|_large|_small)$", "", re.sub(r"\d+$", "", network)).rstrip("_")


def normalize(data: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    rows, skipped = [], {}
    for src in SOURCES:
        profile, runtime = src.profile, src.runtime
        sk: dict[str, int] = {}
        for _, row in data[src.select(data)].iterrows():
            mapped = src.mapping(row)
            if mapped is None:
                sk["family not in the zoo"] = sk.get("family not in the zoo", 0) + 1
                continue
            network, width, res = mapped
            pub = published_macs(row) if profile.startswith("zynq") else None
            if pub is not None:
                ours = count_costs(spec_of(network, width, res)[1]).macs
                if abs(ours / pub - 1) > 0.06:
                    sk["published MACs >6% from our build"] = sk.get("published MACs >6% from our build", 0) + 1
                    continue
            precision = "int8" if str(row["precision"]).startswith("int8") else str(row["precision"])
            rows.append({"profile": profile, "network": network, "width": width, "resolution": res or "",
                         "runtime": runtime, "precision": precision, "latency_ms": row["latency_ms"],
                         "family": family_group(network), "published_model": row["model"], "source": row["source"]})
        skipped[runtime] = sk
    return pd.DataFrame(rows), skipped


def _scatter(key: str, measurements: list[NetworkMeasurement], predicted: tuple[float, ...], title: str) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    measured = [m.latency_ms for m in measurements]
    for fam in sorted({m.family for m in measurements}):
        idx = [i for i, m in enumerate(measurements) if m.family == fam]
        ax.scatter([measured[i] for i in idx], [predicted[i] for i in idx], label=fam, s=18)
    lo, hi = min(measured + list(predicted)) * 0.8, max(measured + list(predicted)) * 1.25
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="published ms", ylabel="predicted ms", title=title)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / f"device_latency_{key}.png", dpi=110)
    plt.close(fig)


def _rows(table: pd.DataFrame, runtime: str, precision: str) -> list[NetworkMeasurement]:
    sub = table[(table.runtime == runtime) & (table.precision == precision)]
    records = [{str(k): str(v) for k, v in r.items()} for r in sub.to_dict("records")]
    return read_network_rows(records, runtime=runtime, precision=precision)[0]


def spread(data: pd.DataFrame) -> list[str]:
    """Published figures of one model on one device and board that disagree across sources and
    runtimes: the spread the fits avoid by keeping to one source per profile."""
    lines = ["", "## Where sources disagree (same device, board, model, precision and resolution; all runtimes)",
             "", "| device | board | model | precision | figures | min ms | max ms | max/min |", "|---|---|---|---|---|---|---|---|"]
    key = ["device", "board", "model", "precision", "resolution"]
    for (dev, board, model, prec, _), g in data.groupby(key, dropna=False):
        if len(g) > 1 and g.latency_ms.max() > 1.05 * g.latency_ms.min():
            lines.append(f"| {dev} | {board} | {model} | {prec} | {len(g)} | {g.latency_ms.min():g} | "
                         f"{g.latency_ms.max():g} | {g.latency_ms.max() / g.latency_ms.min():.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"published latency file {args.data} not found; give --data PATH", file=sys.stderr)
        return 2
    data = pd.concat([pd.read_csv(path) for path in (args.data, MORE_DATA) if path.is_file()], ignore_index=True)
    table, skipped = normalize(data)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "device_calibration_networks.csv", index=False)
    report: dict[str, object] = {}
    lines = ["# Device latency models, leave-one-family-out on published whole-network latencies", "",
             "Command: `.venv/bin/python benchmarks/device_latency.py`. Each family is predicted by a fit on the "
             "other families only (nas.hardware.network_fit; a model scaled from another precision has that "
             "precision's rows of the family left out too). Mapped rows: `device_calibration_networks.csv`, the "
             "input of `hwnas profile calibrate PROFILE --networks`.", "",
             "| profile | runtime (source) | precision | fit | networks | families | MdAPE | within 20% | Spearman |",
             "|---|---|---|---|---|---|---|---|---|"]
    for src in SOURCES:
        for precision in src.precisions:
            opts = src.options.get(precision, {})
            options = NetworkFitOptions(precision=precision, **opts)
            measurements = _rows(table, src.runtime, precision)
            base = (_rows(table, src.scale_runtime or src.runtime, options.scale_from) if options.scale_from else [])
            fitted = fit_networks(measurements, options, base)
            in_sample = [predict_network(fitted, m.spec, precision) for m in measurements]
            how = f"scaled from {options.scale_from}" if options.scale_from else "own terms"
            key = f"{src.profile}_{precision}"
            entry: dict[str, Any] = {"runtime": src.runtime, "fit": how, "n": len(measurements),
                                     "skipped": skipped[src.runtime]}
            if len({m.family for m in measurements}) >= 2:
                result = leave_one_family_out(measurements, options, base)
                entry |= {"families": result.families, "mdape": result.mdape, "within_20pct": result.within_20pct,
                          "spearman": result.spearman}
                lines.append(f"| {src.profile} | {src.runtime} | {precision} | {how} | {result.n} | "
                             f"{result.families} | {100 * result.mdape:.1f}% | {100 * result.within_20pct:.0f}% | "
                             f"{result.spearman:.3f} |")
                predicted = result.predicted
                title = f"{src.profile} {precision} (family left out)\nMdAPE {100 * result.mdape:.1f}%, " \
                        f"Spearman {result.spearman:.2f}"
            else:  # one family: no family can be left out; the in-sample error is all there is
                ins = score(measurements, in_sample)
                entry |= {"families": 1, "in_sample_mdape": ins.mdape, "cross_validated": False}
                lines.append(f"| {src.profile} | {src.runtime} | {precision} | {how} | {ins.n} | 1 | "
                             f"not cross-validated (in-sample {100 * ins.mdape:.1f}%) | | |")
                predicted, title = tuple(in_sample), f"{src.profile} {precision} (in sample, one family)"
            entry["rows"] = [{"network": m.key, "family": m.family, "published_ms": m.latency_ms,
                              "predicted_lofo_ms": round(p, 3), "predicted_in_sample_ms": round(q, 3)}
                             for m, p, q in zip(measurements, predicted, in_sample)]
            report[key] = entry
            _scatter(key, measurements, predicted, title)
    lines += ["", "Skipped rows per source: " + "; ".join(f"{r}: {s}" for r, s in skipped.items())]
    lines += spread(data)
    (RESULTS / "device_latency.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "device_latency.json").write_text(json.dumps(report, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    code = main()
    record_run("device_latency")  # the date benchmarks/results_page.py shows
    sys.exit(code)
