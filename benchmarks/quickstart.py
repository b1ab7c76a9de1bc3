"""Quickstart acceptance benchmark: time `hwnas search quickstart` from scratch, then check every
front model independently: the ONNX file loads in onnxruntime and its test accuracy, re-measured
here from the file alone (preprocessing read from its metadata), matches the recorded figure.

    .venv/bin/python benchmarks/quickstart.py              # fresh run in runs/bench-quickstart
    .venv/bin/python benchmarks/quickstart.py --baselines  # ... then `hwnas baselines` beside it
    .venv/bin/python benchmarks/quickstart.py --reuse      # only verify an existing run

Writes benchmarks/results/quickstart.md, quickstart.csv and quickstart_front.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pandas as pd

from results_page import record_run
from nas.core.config import load_search_config
from nas.data.splits import Preprocess, load_raw, to_tensor
from nas.hardware.profiles import load_profile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def verify(run_dir: Path) -> pd.DataFrame:
    cfg = load_search_config("quickstart")
    raw = load_raw(cfg.data, cache_dir=run_dir.parent / ".cache")
    front = pd.read_csv(run_dir / "front.csv")
    rows = []
    for row in front.to_dict("records"):  # plain values (itertuples types every cell as any scalar)
        path = run_dir / str(row["onnx_path"])
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        shape = json.loads(meta["hwnas.input_shape"])
        pre = Preprocess(source_size=raw.x_test.shape[1], channels=shape[1], mean=tuple(json.loads(meta["hwnas.mean"])),
                         std=tuple(json.loads(meta["hwnas.std"])), channel_order=meta["hwnas.channel_order"])
        correct = 0
        for start in range(0, len(raw.y_test), 1000):
            x = to_tensor(raw.x_test[start:start + 1000], pre, shape[-1]).numpy()
            logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            correct += int((logits.argmax(1) == raw.y_test[start:start + 1000]).sum())
        measured, recorded = correct / len(raw.y_test), float(row["accuracy"])
        rows.append({"source": row["source"], "trial": row["trial"], "arch": row["arch"], "recorded_accuracy": recorded,
                     "remeasured_accuracy": measured, "delta_points": round(100 * (measured - recorded), 3),
                     "latency_ms": row["latency_ms"], "macs": row["macs"], "params": row["params"],
                     "peak_memory_mb": row["peak_memory_mb"], "loads": True})
    return pd.DataFrame(rows)


def baselines_section(run_dir: Path, seconds: float | None) -> list[str]:
    """The handcrafted baselines of the run beside its searched front."""
    states = pd.read_csv(run_dir / "baselines.csv")["state"]
    front = pd.read_csv(run_dir / "front.csv")
    trained = front[front["source"] == "baseline"]
    shown = trained[["name", "accuracy", "latency_ms", "macs", "params", "peak_memory_mb", "dominated_by_front"]]
    return [
        "## Handcrafted baselines under the same budgets (`hwnas baselines quickstart`)", "",
        f"- wall time: {'%.0f s' % seconds if seconds else 'not timed'}",
        f"- {len(states)} baselines: {(states == 'COMPLETE').sum()} trained, "
        f"{(states == 'PRUNED').sum()} rejected before training (over budget), {(states == 'FAIL').sum()} failed",
        f"- trained baselines dominated by the searched front: {int(trained['dominated_by_front'].sum())} "
        f"of {len(trained)}", "",
        shown.to_markdown(index=False),
        "", "![front with baselines](quickstart_front.png)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="verify the existing run without searching")
    parser.add_argument("--baselines", action="store_true", help="also run hwnas baselines in the same run")
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "bench-quickstart"))
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    hwnas = str(Path(sys.executable).parent / "hwnas")
    times_file = run_dir / "bench_seconds.json"  # wall times measured on this run, kept for --reuse
    if not args.reuse:
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([hwnas, "search", "quickstart", "--out", str(run_dir)], check=True)
        times_file.write_text(json.dumps({"search": time.perf_counter() - start}))
    if args.baselines:
        start = time.perf_counter()
        subprocess.run([hwnas, "baselines", "quickstart", "--out", str(run_dir)], check=True)
        times = json.loads(times_file.read_text()) if times_file.exists() else {}
        times_file.write_text(json.dumps({**times, "baselines": time.perf_counter() - start}))
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    seconds, baseline_seconds = times.get("search"), times.get("baselines")
    table = verify(run_dir)
    searched = table[table["source"] == "search"]
    profile = load_profile("cpu")
    lat = profile.latency
    assert lat is not None  # the bundled cpu profile is a measured one
    trials = pd.read_csv(run_dir / "trials.csv")
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "quickstart.csv", index=False)
    lines = [
        "# Quickstart benchmark", "",
        f"Command: `.venv/bin/python benchmarks/quickstart.py` on {platform.machine()} with "
        f"{len(os.sched_getaffinity(0))} CPU cores, onnxruntime {ort.__version__}.", "",
        f"- search wall time (12 trials, setup already done): {'%.0f s' % seconds if seconds else 'not timed'}",
        f"- trials: {len(trials)} ({(trials['state'] == 'COMPLETE').sum()} trained, "
        f"{(trials['state'] == 'PRUNED').sum()} rejected before training, {(trials['state'] == 'FAIL').sum()} failed)",
        f"- Pareto rows: {len(searched)}; best test accuracy {100 * searched['recorded_accuracy'].max():.2f}%",
        f"- largest |recorded - re-measured| accuracy over {len(table)} front and baseline files: "
        f"{table['delta_points'].abs().max():.3f} points (re-measured from the ONNX file alone, preprocessing "
        "read from its metadata)",
        f"- latency: measured on this host, onnxruntime CPU, batch 1, {lat.threads} thread(s), median of "
        f"{lat.repeats} runs (profile {profile.tag})", "",
        table.to_markdown(index=False),
    ]
    if (run_dir / "baselines.csv").exists():
        lines += ["", *baselines_section(run_dir, baseline_seconds)]
    shutil.copyfile(run_dir / "front.png", RESULTS / "quickstart_front.png")
    (RESULTS / "quickstart.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = (len(searched) >= 3 and searched["recorded_accuracy"].max() >= 0.85
          and table["delta_points"].abs().max() <= 0.5)
    print("acceptance:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    record_run("quickstart")  # the date benchmarks/results_page.py shows
    sys.exit(code)
