"""Latency-model accuracy.

1. Host CPU: ``hwnas profile build`` + ``calibrate`` on this machine (two ways: the generic designed
   set, and random networks of the quickstart search space with another seed), then predicted vs
   onnxruntime-measured latency of held-out random architectures of the quickstart space, fp32
   and int8 (static QDQ).
2. HW-NAS-Bench devices: fit on half the blocks, error on the other half.

    .venv/bin/python benchmarks/latency_model.py [--table ../shared/data/hwnasbench_fbnet_blocks.json] [--n 120]

Writes benchmarks/results/latency_model.md, latency_model.json, latency_model.png and
latency_model_cpu.png (and latency_model_cpu.csv); the calibrated host profiles go to
runs/latency-bench/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from nas.core.config import load_search_config  # noqa: E402
from nas.cost.layers import Layer, layer_table  # noqa: E402
from nas.hardware.calibrate import calibrate_from_build  # noqa: E402
from nas.hardware.fitting import fit_table, score  # noqa: E402
from nas.hardware.hwnasbench import (
    hwnasbench_measurements,  # noqa: E402
    load_table,  # noqa: E402
)
from nas.hardware.latency_model import predict  # noqa: E402
from nas.hardware.profile_build import (  # noqa: E402
    build_measurements,
    designed_architectures,
    profile_skeleton,
    time_networks,
)
from nas.hardware.profiles import HardwareProfile, load_profile  # noqa: E402
from nas.space.arch import ArchSpec  # noqa: E402
from nas.space.sampler import SearchSpace  # noqa: E402
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ROUNDS = 3  # passes over all host networks; each network's measured latency is the median of its passes
# device -> (table metric, peak MAC/s, bandwidth GB/s, where those two numbers come from)
DEVICES = {
    "edgegpu": ("edgegpu_latency", 332.8e9, 59.7, "Jetson TX2 datasheet: 256 CUDA cores x 1.3 GHz (fp32 FMA); "
                                                   "128-bit LPDDR4 at 59.7 GB/s"),
    "raspi4": ("raspi4_latency", None, None, "hw_profiles/raspberry-pi4.yaml"),
    "fpga": ("fpga_latency", None, None, "hw_profiles/zynq-zc706.yaml"),
}


def device_numbers(name: str) -> tuple[str, float, float, str]:
    metric, peak, bandwidth, source = DEVICES[name]
    if peak is None:
        profile = load_profile(Path(source).stem)
        assert profile.device is not None
        peak = next(iter(profile.device.macs_per_s.values())).value
        bandwidth = profile.device.bandwidth_gb_s.value
    assert bandwidth is not None  # every table above has a bandwidth, given or from its profile
    return metric, peak, bandwidth, source


def _test_architectures(n: int, seed: int, exclude: set[str]) -> list[ArchSpec]:
    """``n`` random quickstart-space networks, none of them in ``exclude`` (the calibration sets)."""
    space = SearchSpace(load_search_config("quickstart").space, in_chs=1, num_classes=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[ArchSpec] = []
    seen = set(exclude)
    while len(out) < n:
        spec = space.sample(study.ask())
        if spec.format() not in seen:
            seen.add(spec.format())
            out.append(spec)
    return out


Timings = dict[str, list[dict[str, Any]]]  # arch -> one timing row per precision


def _time_all(n: int, started: float) -> tuple[dict[str, dict[str, Any]], dict[str, list[ArchSpec]],
                                                list[ArchSpec], Timings, int]:
    """The two calibration sets and ``n`` held-out networks, all timed in one pass in a seeded
    random order, so that drift of this shared machine's speed hits every set alike."""
    lat = load_profile("cpu").latency
    assert lat is not None
    variants: dict[str, dict[str, Any]] = {
        "generic": dict(n=300, seed=0),
        "quickstart": dict(n=200, seed=1, space=load_search_config("quickstart").space, space_name="quickstart",
                           in_chs=(1,))}
    sets = {name: designed_architectures(o["n"], seed=o["seed"], space=o.get("space"), in_chs=o.get("in_chs", (1, 3)))
            for name, o in variants.items()}
    test_specs = _test_architectures(n, seed=1000, exclude={a.format() for archs in sets.values() for a in archs})
    everything = list({a.format(): a for a in [*sets["generic"], *sets["quickstart"], *test_specs]}.values())
    order = np.random.default_rng(0).permutation(len(everything))

    def progress(done: int, total: int, arch: str) -> None:
        if done % 100 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"[{done:>5}/{total}] network timings | elapsed {elapsed:.0f}s ETA "
                  f"{elapsed / done * (total - done):.0f}s", flush=True)

    timed = time_networks([everything[i] for i in order], ("fp32", "int8"), threads=lat.threads, warmup=lat.warmup,
                          repeats=lat.repeats, rounds=ROUNDS, progress=progress)
    by_arch: Timings = {}
    for row in timed:
        by_arch.setdefault(str(row["arch"]), []).append(row)
    return variants, sets, test_specs, by_arch, len(everything)


def _host_profiles(variants: dict[str, dict[str, Any]], sets: dict[str, list[ArchSpec]],
                   by_arch: Timings) -> dict[str, HardwareProfile]:
    """``hwnas profile build`` + ``calibrate`` on each calibration set's timings."""
    folder = ROOT / "runs" / "latency-bench"
    folder.mkdir(parents=True, exist_ok=True)
    profiles = {}
    for name, options in variants.items():
        rows = [r for a in sets[name] for r in by_arch[a.format()]]
        data = build_measurements(f"host-{name}", rows=rows, rounds=ROUNDS, **options)
        (folder / f"host-{name}-measurements.json").write_text(json.dumps(data, indent=1))
        path = folder / f"host-{name}.yaml"
        path.write_text(yaml.safe_dump(profile_skeleton(data), sort_keys=False, width=100))
        calibrate_from_build(path, data, out=path)
        profiles[name] = load_profile(path)
    return profiles


Test = tuple[str, list[Layer], dict[str, float]]  # arch, its layers, measured ms by precision


def _pass_agreement(tests: list[Test], passes: dict[tuple[str, str], list[float]],
                    summary: dict[str, object]) -> list[str]:
    """How well one pass's timing agrees with another's: the floor any model meets against one pass."""
    rows = []
    for precision in ("fp32", "int8"):
        pairs = [(i, j) for i in range(ROUNDS) for j in range(i + 1, ROUNDS)]
        agree = [float(np.mean([abs(passes[a, precision][j] / passes[a, precision][i] - 1) <= 0.10
                                for a, _, _ in tests])) for i, j in pairs]
        summary[f"cpu_{precision}_pass_to_pass_within_10pct"] = float(np.mean(agree))
        rows.append(f"| {precision} | {100 * float(np.mean(agree)):.0f}% ({', '.join(f'{100 * x:.0f}%' for x in agree)}) |")
    return rows


def _score_host(profiles: dict[str, HardwareProfile], tests: list[Test], passes: dict[tuple[str, str], list[float]],
                summary: dict[str, object]) -> tuple[list[str], list[dict[str, Any]]]:
    rows, csv_rows = [], []
    for name, profile in profiles.items():
        for precision in ("fp32", "int8"):
            device = profile.device_model(precision)
            pred = np.array([predict(layers, device, precision=precision).total_ms for _, layers, _ in tests])
            meas = np.array([m[precision] for _, _, m in tests])
            ape = np.abs(pred / meas - 1)
            one_pass = [float(np.mean([abs(p / passes[a, precision][r] - 1) <= 0.10 for (a, _, _), p in zip(tests, pred)]))
                        for r in range(ROUNDS)]
            stats = {"n": len(tests), "within_10pct": float(np.mean(ape <= 0.10)), "mdape": float(np.median(ape)),
                     "spearman": float(spearmanr(pred, meas).statistic),
                     "within_10pct_of_one_pass": float(np.mean(one_pass))}
            if name == "quickstart" and precision == "fp32":
                summary |= {f"cpu_{k}": v for k, v in stats.items()}
                summary["cpu_note"] = ("fp32; host profile built with hwnas profile build --space quickstart "
                                       "(200 networks, seed 1), scored on held-out random quickstart networks (seed 1000)")
            summary |= {f"cpu_{name}_{precision}_{k}": v for k, v in stats.items()}
            rows.append(f"| {name} | {precision} | {stats['n']} | {100 * stats['within_10pct']:.0f}% | "
                        f"{100 * stats['mdape']:.1f}% | {stats['spearman']:.3f} | {float(np.median(pred / meas)):.3f} | "
                        f"{100 * stats['within_10pct_of_one_pass']:.0f}% |")
            csv_rows += [{"calibration": name, "precision": precision, "arch": arch, "measured_ms": mm,
                          "predicted_ms": pp} for (arch, _, _), mm, pp in zip(tests, meas, pred)]
    return rows, csv_rows


def _plot_host(csv_rows: list[dict[str, Any]]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    for ax, precision in zip(axes, ("fp32", "int8")):
        for name, marker in (("quickstart", "."), ("generic", "x")):
            pts = [r for r in csv_rows if r["calibration"] == name and r["precision"] == precision]
            ax.plot([r["measured_ms"] for r in pts], [r["predicted_ms"] for r in pts], marker, ms=4, ls="",
                    label=f"calibrated on {name} set")
        meas = [r["measured_ms"] for r in csv_rows if r["precision"] == precision]
        lims = np.array([min(meas) * 0.8, max(meas) * 1.2])
        ax.plot(lims, lims, "k--", lw=0.8)
        ax.plot(lims, lims * 1.1, "k:", lw=0.6)
        ax.plot(lims, lims * 0.9, "k:", lw=0.6)
        ax.set_title(f"host CPU {precision}: predicted vs measured")
        ax.set_xlabel(f"measured ms (onnxruntime, 1 thread, median of {ROUNDS} passes)")
        ax.set_ylabel("predicted ms")
        ax.legend(fontsize=8)
    fig.savefig(RESULTS / "latency_model_cpu.png", dpi=110)


def host_section(n: int) -> tuple[dict[str, object], list[str], list[dict[str, Any]]]:
    """Build and calibrate two host profiles; score them on ``n`` held-out architectures."""
    started = time.perf_counter()
    variants, sets, test_specs, by_arch, timed = _time_all(n, started)
    profiles = _host_profiles(variants, sets, by_arch)
    build_s = time.perf_counter() - started
    tests: list[Test] = [(a.format(), layer_table(a), {str(r["precision"]): float(r["latency_ms"])
                                                       for r in by_arch[a.format()]}) for a in test_specs]
    passes = {(a.format(), str(r["precision"])): [float(x) for x in r["round_ms"]] for a in test_specs
              for r in by_arch[a.format()]}
    summary: dict[str, object] = {"cpu_time_and_calibrate_s": round(build_s, 1), "cpu_networks_timed": timed,
                                  "cpu_rounds": ROUNDS}
    noise_rows = _pass_agreement(tests, passes, summary)
    rows, csv_rows = _score_host(profiles, tests, passes, summary)
    _plot_host(csv_rows)
    return summary, rows + ["", "Pass-to-pass agreement of the held-out networks' timings (share within 10% of "
                            "each other; mean over pairs of passes, then each pair):", "",
                            "| precision | one pass within 10% of another |", "|---|---|", *noise_rows], csv_rows


def _device_rows(ax: Any, name: str, table: dict[str, dict[str, float]], summary: dict[str, object]) -> list[str]:
    """Fit HW-NAS-Bench device ``name`` on half its blocks, score the other half, plot all."""
    rows: list[str] = []
    metric, peak, bandwidth, source = device_numbers(name)
    precision = "fp16" if name == "fpga" else "fp32"  # the ZC706 profile's 16-bit data
    blocks, left_out = hwnasbench_measurements(table, metric)
    chosen, held, fitted = fit_table(blocks, macs_per_s=peak, bandwidth_gb_s=bandwidth, precision=precision)
    device = fitted.on(macs_per_s={precision: peak}, bandwidth_gb_s=bandwidth)
    all_blocks = score(blocks, device)
    held_out = held[chosen]
    summary |= {f"{name}_cv_mdape": held_out.mdape, f"{name}_cv_within_10pct": held_out.within_10pct,
                f"{name}_cv_spearman": held_out.spearman, f"{name}_cv_n_test": held_out.n, f"{name}_form": chosen}
    for form, sc in held.items():
        summary |= {f"{name}_cv_mdape_{form}": sc.mdape, f"{name}_cv_spearman_{form}": sc.spearman}
        rows.append(f"| {name} | {metric} | {form}{' (kept)' if form == chosen else ''} | {len(blocks)} "
                    f"({left_out} left out) | {100 * sc.mdape:.1f}% | {100 * sc.within_10pct:.0f}% | "
                    f"{sc.spearman:.3f} | " + (f"{100 * all_blocks.mdape:.1f}%" if form == chosen else "") +
                    f" | {source} |")
    measured = np.array([b.latency_ms for b in blocks])
    predicted = np.array([predict(b.layers, device, precision=precision).total_ms for b in blocks])
    ax.loglog(measured, predicted, ".", ms=4)
    ax.minorticks_off()  # minor log labels overlap on the narrow TX2 range
    lims = [min(measured.min(), predicted.min()), max(measured.max(), predicted.max())]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set_title(f"{name} ({chosen}): held-out MdAPE {100 * held_out.mdape:.1f}%")
    ax.set_xlabel("measured ms (HW-NAS-Bench)")
    ax.set_ylabel("predicted ms (fit on all blocks)")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "hwnasbench_fbnet_blocks.json"))
    parser.add_argument("--n", type=int, default=120, help="held-out host architectures (default 120)")
    args = parser.parse_args()
    table = load_table(args.table)
    summary, cpu_rows, csv_rows = host_section(args.n)
    pd.DataFrame(csv_rows).to_csv(RESULTS / "latency_model_cpu.csv", index=False)
    rows = []
    fig, axes = plt.subplots(1, len(DEVICES), figsize=(4.2 * len(DEVICES), 4), constrained_layout=True)
    for ax, name in zip(axes, DEVICES):
        rows += _device_rows(ax, name, table, summary)
    fig.savefig(RESULTS / "latency_model.png", dpi=110)
    (RESULTS / "latency_model.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = "\n".join([
        "# Latency model vs HW-NAS-Bench per-block latencies", "",
        "Command: `.venv/bin/python benchmarks/latency_model.py`. Two forms of the per-layer model "
        "(nas/latency_model.py): roofline, max(compute / (peak x efficiency), bytes / (bandwidth x efficiency)) + "
        "overhead, fitted by least squares on log latency; linear, fitted times per million MACs, per MB read, "
        "written and of weights, per group and group-position of grouped convs, plus per-op overheads, fitted by "
        "non-negative least squares on relative error (nas/hardware/fitting.py). Cross-validation: fit on a seeded half "
        "of the blocks, error on the other half; `hwnas profile calibrate` (form auto) keeps the form with the lower "
        "held-out MdAPE, as the bundled profiles do. Blocks with a zero figure (the FPGA table's stem, head, pooling, "
        "FC and skips) and identity skips are left out.", "",
        "| device | table | form | blocks | held-out MdAPE | held-out within 10% | held-out Spearman | MdAPE, fit on "
        "all | peak and bandwidth from |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        "![predicted vs measured](latency_model.png)", "",
        "## Host CPU: predicted vs measured on held-out architectures", "",
        f"{args.n} random networks of the quickstart search space (seed 1000, none of them in a calibration set), "
        "against two host profiles calibrated in the same run with `hwnas profile calibrate` (linear form: per op "
        "key, ms per M MACs, per MB read, written and of weights, per group and group-position of grouped convs, "
        "per op; onnxruntime's graph rules: fusions, NCHWc at fp32, NHWC at int8; per-inference overhead) on the "
        "measurement files of `hwnas profile build`: `generic` (300 networks of every block type, seed 0) and "
        "`quickstart` (`--space quickstart`: 200 random networks of the search space, seed 1). All "
        f"{summary['cpu_networks_timed']} networks were timed together in {ROUNDS} passes over the whole set, in a "
        "seeded random order, so that drift of this shared machine's speed hits calibration and held-out networks "
        "alike (`nas.hardware.profile_build.time_networks`, what `hwnas profile build` runs): each pass times each network in "
        "a fresh onnxruntime CPU session (default graph optimizations, 1 thread, median of 200 runs), at fp32 and "
        "at int8 (static QDQ, per-channel, uint8 activations), and a network's measured latency is the median of "
        f"its {ROUNDS} passes. Timing and calibration took {summary['cpu_time_and_calibrate_s']} s. The last column "
        "scores the same predictions against a single pass's timing instead (mean over passes). Per-network "
        "scatter: latency_model_cpu.csv.", "",
        "| calibration set | precision | networks | within 10% | MdAPE | Spearman | median predicted/measured "
        "| within 10% of one pass |",
        "|---|---|---|---|---|---|---|---|", *cpu_rows, "",
        "![host predicted vs measured](latency_model_cpu.png)", ""])
    (RESULTS / "latency_model.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    code = main()
    record_run("latency_model")  # the date benchmarks/results_page.py shows
    sys.exit(code)
