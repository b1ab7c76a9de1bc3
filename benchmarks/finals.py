"""Finals benchmark: the quickstart front trained to convergence, exported as ONNX, TFLite fp32 and
full-integer int8 TFLite, each file measured by its runtime.

    .venv/bin/python benchmarks/finals.py [--epochs 30] [--threads 1]

Steps (each resumable; rerun the command after an interruption):
1. ``hwnas search quickstart --out runs/bench-finals`` (skipped when the run exists);
2. ``hwnas train runs/bench-finals --front`` (the config's final section: 30 epochs on the whole
   training split, random-crop augmentation; a checkpoint every epoch);
3. ``hwnas export runs/bench-finals --trial N --final --format tflite --precision fp32|int8`` per final.

Writes benchmarks/results/finals.md, finals.csv and finals.png. Targets (issue 13): best final at
least 92% Fashion-MNIST test accuracy within the quickstart's 2.5 M MACs; int8 TFLite within 0.5
points of the fp32 final.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nas.data.splits import Splits  # noqa: E402
from nas.deploy.host_latency import session  # noqa: E402
from nas.search.study import load_run_config, load_splits  # noqa: E402
from nas.space.arch import parse  # noqa: E402
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUN = ROOT / "runs" / "bench-finals"
HWNAS = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"]
MACS_BUDGET = 2_500_000
# the further stages this benchmark has reported, by folder name (run by hand; see README "Results")
STAGE_NOTES = {
    "final-restart": "`final-restart` continues a final with a warm restart (`--init-from models/N/final/weights.pt "
                     "--stage restart --epochs 15 --lr 0.002`)",
    "final-long": "`final-long` trains from scratch for twice the epochs with crop and flip (`--stage long --epochs 60 "
                  "--augment crop,flip`)",
}


def _run(*args: str) -> float:
    print("$ hwnas " + " ".join(args), flush=True)
    started = time.perf_counter()
    subprocess.run([*HWNAS, *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def _plain_bilinear_accuracy(model: Path, splits: Splits, resolution: int) -> float | None:
    """Test accuracy of the ONNX file fed by a consumer that reads "bilinear" and skips the
    antialiasing the contract states (None when the model takes the source size)."""
    if resolution == splits.preprocess.source_size:
        return None
    sess = session(model, threads=1)
    pre, correct = splits.preprocess, 0
    for start in range(0, len(splits.y_test), 1000):
        x = torch.from_numpy(splits.x_test[start:start + 1000]).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=False)
        x = (x - torch.tensor(pre.mean).view(1, -1, 1, 1)) / torch.tensor(pre.std).view(1, -1, 1, 1)
        logits = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        correct += int((logits.argmax(1) == splits.y_test[start:start + 1000]).sum())
    return correct / len(splits.y_test)


def _row(final_dir: Path, splits: Splits) -> dict[str, object]:
    m = json.loads((final_dir / "metrics.json").read_text())
    resolution = parse(m["arch"]).resolution
    plain = _plain_bilinear_accuracy(final_dir / "model.onnx", splits, resolution)
    files = m.get("artifacts") or {}
    onnx = files.get("onnx", {})
    fp32, int8 = files.get("tflite-fp32", {}), files.get("tflite-int8", {})
    init = m.get("init_from") or {}
    return {"trial": m["trial"], "stage": final_dir.name, "arch": m["arch"], "macs": m["macs"], "params": m["parameters"],
            "epochs": len(m["history"]) + len(init.get("history") or []),
            "train_min": round(m["train_seconds"] / 60, 1),
            "proxy_onnx_acc": m["proxy_test_accuracy"], "final_onnx_acc": onnx.get("test_accuracy"),
            "final_tflite_fp32_acc": fp32.get("test_accuracy"), "final_tflite_int8_acc": int8.get("test_accuracy"),
            "int8_drop_points": (round(100 * (fp32["test_accuracy"] - int8["test_accuracy"]), 2)
                                 if fp32 and int8 else None),
            "onnxruntime_ms": onnx.get("host_latency_ms"), "litert_fp32_ms": fp32.get("host_latency_ms"),
            "litert_int8_ms": int8.get("host_latency_ms"), "onnx_bytes": onnx.get("bytes"),
            "tflite_fp32_bytes": fp32.get("bytes"), "tflite_int8_bytes": int8.get("bytes"),
            "edgetpu_ready": int8.get("edgetpu_ready"), "edgetpu_note": int8.get("edgetpu_summary", ""),
            "int8_route": int8.get("int8_route"),  # the route kept on validation accuracy
            "int8_route_val_acc": json.dumps(int8.get("int8_route_val_accuracy")) if int8 else None,
            "files": " ".join(sorted(Path(str(f["path"])).name for f in files.values())),
            "resolution": resolution,
            "onnx_acc_if_resize_not_antialiased": plain,
            "antialias_skipped_cost_points": (round(100 * (onnx["test_accuracy"] - plain), 2)
                                              if plain is not None and onnx else None)}


def _plot(table: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    table = table[table.stage == "final"]
    for row in table.to_dict("records"):
        ax.plot([row["macs"] / 1e6] * 2, [100 * row["proxy_onnx_acc"], 100 * row["final_onnx_acc"]], color="0.7",
                zorder=1)
    ax.scatter(table.macs / 1e6, 100 * table.proxy_onnx_acc, label="proxy (3 epochs, 20k images): ONNX", marker="o")
    ax.scatter(table.macs / 1e6, 100 * table.final_onnx_acc, label="final: ONNX (onnxruntime)", marker="*", s=120)
    ax.scatter(table.macs / 1e6, 100 * table.final_tflite_int8_acc, label="final: int8 TFLite (LiteRT)", marker="x")
    ax.axvline(MACS_BUDGET / 1e6, color="red", linestyle="--", linewidth=1, label="MACs budget")
    ax.axhline(92, color="green", linestyle=":", linewidth=1, label="target 92%")
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("Fashion-MNIST test accuracy % (measured on each file)")
    ax.set_title("Quickstart front: proxy vs trained to convergence")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _stages(args: argparse.Namespace) -> tuple[float, float, list[Path]]:
    """Search (unless the run exists), train the front's finals, export each as TFLite fp32 and
    int8 where its folder lacks them; the seconds of the first two and the finals' metrics files."""
    search_s = 0.0 if (RUN / "study.db").exists() else _run("search", "quickstart", "--out", str(RUN))
    train = ["train", str(RUN), "--front", "--threads", str(args.threads)]
    train_s = _run(*train, *(["--epochs", str(args.epochs)] if args.epochs else []))
    finals = sorted(RUN.glob("models/*/final*/metrics.json"))  # final/, and final-<stage>/ of further stages
    for metrics in finals:
        have = json.loads(metrics.read_text()).get("artifacts") or {}
        trial = metrics.parent.parent.name.lstrip("0") or "0"
        stage = ["--final", metrics.parent.name.removeprefix("final").removeprefix("-")]
        if stage[1] == "":
            stage = ["--final"]
        for precision in ("fp32", "int8"):
            if f"tflite-{precision}" not in have or (precision == "int8" and args.reexport_int8):
                _run("export", str(RUN), "--trial", trial, *stage, "--format", "tflite", "--precision", precision)
    return search_s, train_s, finals


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="overrides final.epochs (the quickstart's: 30)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reexport-int8", action="store_true",
                        help="make every final's int8 TFLite file again (hwnas export), e.g. after the int8 path changed")
    return parser.parse_args()


def main() -> int:
    args = _args()
    search_s, train_s, finals = _stages(args)
    splits = load_splits(load_run_config(RUN), cache_dir=RUN.parent / ".cache")
    table = pd.DataFrame([_row(m.parent, splits) for m in finals]).sort_values("final_onnx_acc", ascending=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "finals.csv", index=False)
    _plot(table, RESULTS / "finals.png")
    within = table[table.macs <= MACS_BUDGET]
    best = within.iloc[0] if len(within) else None
    first = within[within.stage == "final"]
    first_best = first.iloc[0] if len(first) else None
    max_drop = table.int8_drop_points.max()
    shown = table.drop(columns=["edgetpu_note"]).copy()
    for col in ("proxy_onnx_acc", "final_onnx_acc", "final_tflite_fp32_acc", "final_tflite_int8_acc"):
        shown[col] = (100 * shown[col]).round(2)
    lines = [
        "# Finals: the quickstart front trained to convergence", "",
        f"Command: `.venv/bin/python benchmarks/finals.py{' --epochs ' + str(args.epochs) if args.epochs else ''}` "
        f"on {platform.machine()} with 2 CPU cores ({args.threads} training thread(s)); this invocation: search "
        f"{search_s:.0f} s (0: reused), training {train_s / 60:.1f} min (resumed finals count only their remaining "
        "epochs).", "",
        "Every accuracy is measured on the file named, on all 10,000 Fashion-MNIST test images: `.onnx` by "
        "onnxruntime, `.tflite` by the LiteRT interpreter. Latencies: this host, batch 1, 1 thread, median of "
        "200 runs, each runtime on its own file, measured side by side in the same run (noisy shared machine: "
        "compare ratios, not absolutes).", "",
        "## Targets", "",
        (f"- best final within {MACS_BUDGET / 1e6:.1f} M MACs: trial {best.trial} ({best.stage}, {best.epochs} epochs), "
         f"{100 * best.final_onnx_acc:.2f}% (ONNX), {100 * best.final_tflite_int8_acc:.2f}% (int8 TFLite) at "
         f"{best.macs / 1e6:.2f} M MACs: target 92% "
         f"{'met' if best.final_onnx_acc >= 0.92 else 'NOT met'}" if best is not None else "- no final within budget"),
        (f"- best final of the first stage alone (30 epochs): trial {first_best.trial}, "
         f"{100 * first_best.final_onnx_acc:.2f}% (ONNX)" if first_best is not None else "- no first-stage final"),
        f"- int8 TFLite vs fp32 TFLite, largest drop over {len(table)} finals: {max_drop:.2f} points: target 0.5 "
        f"{'met' if max_drop <= 0.5 else 'NOT met'}",
        (f"- the deploy contract's antialiasing: a consumer that resizes with plain bilinear loses "
         f"{table.antialias_skipped_cost_points.min():.2f}-{table.antialias_skipped_cost_points.max():.2f} points "
         f"on the {int(table.antialias_skipped_cost_points.notna().sum())} downscaled finals (column "
         "`antialias_skipped_cost_points`)" if table.antialias_skipped_cost_points.notna().any() else
         "- no final downscales its input"),
        f"- Edge TPU readiness of the int8 files: {int(table.edgetpu_ready.sum())} of {len(table)} pass "
        "(the reasons of the others, by file, at the end)", "",
        "## Finals", "",
        "`stage`: `final` is `hwnas train --front` with the quickstart's `final` section (30 epochs); "
        "`final-<name>` rows are further `hwnas train --trial N --stage <name>` runs made by hand: "
        f"{', '.join(STAGE_NOTES.values())}; `epochs` counts a warm restart's first stage too. "
        "`int8_route`: the route that made the int8 file, kept per model on validation accuracy over the other "
        "(`int8_route_val_acc`; nas.deploy.tflite_int8).", "",
        shown.to_markdown(index=False), "",
        "![proxy vs final](finals.png)", "",
    ]
    notes = table[table.edgetpu_note.astype(bool) & ~table.edgetpu_ready.astype(bool)]
    if len(notes):
        lines += ["## Edge TPU readiness notes", ""] + [f"- trial {r.trial}: {r.edgetpu_note}" for r in notes.itertuples()]
    (RESULTS / "finals.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'finals.md'}")
    return 0


if __name__ == "__main__":
    code = main()
    record_run("finals")  # the date benchmarks/results_page.py shows
    sys.exit(code)
