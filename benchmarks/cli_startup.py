"""How long the ``hwnas`` command takes to answer before doing any work.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5]

Each command runs ``--repeats`` times as its own process (the installed ``hwnas`` script); the
median wall time counts. The help and version commands must answer in under a second (issue 26):
the parser imports no handler, so torch, onnx and Optuna load only when a command runs. ``hwnas
cost`` of a tiny network is shown beside them: what a command that loads the libraries pays first. Writes
benchmarks/results/cli_startup.md and .json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from results_page import record_run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
HWNAS = str(Path(sys.executable).parent / "hwnas")
ARCH = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"
COMMANDS = (["--help"], ["search", "--help"], ["train", "--help"], ["--version"], ["cost", ARCH])
TARGET_S = 1.0


def median_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([HWNAS, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command; the median counts (default 5)")
    args = parser.parse_args()
    rows = []
    for argv in COMMANDS:
        seconds = median_seconds(argv, args.repeats)
        needs_target = argv[-1] in ("--help", "--version")
        rows.append({"command": " ".join(["hwnas", *("ARCH" if a == ARCH else a for a in argv)]), "median_s": round(seconds, 3),
                     "target_s": TARGET_S if needs_target else None,
                     "met": (seconds < TARGET_S) if needs_target else None})
        print(f"{rows[-1]['command']:<24} median {seconds:.3f} s over {args.repeats}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps({"date": date.today().isoformat(), "repeats": args.repeats,
                                                          "rows": rows}, indent=1) + "\n")
    lines = [f"# CLI startup ({date.today().isoformat()}, median of {args.repeats} processes, this machine)", "",
             "| command | median s | target |", "|---|---|---|"]
    for row in rows:
        target = "-" if row["target_s"] is None else f"< {row['target_s']:.0f} s: {'met' if row['met'] else 'MISSED'}"
        lines.append(f"| `{row['command']}` | {row['median_s']:.3f} | {target} |")
    lines += ["", "Written by `benchmarks/cli_startup.py`. `hwnas cost ARCH` (a tiny network) loads torch, "
              "onnx and the grammar: what every command that does work pays once."]
    (RESULTS / "cli_startup.md").write_text("\n".join(lines) + "\n")
    return 0 if all(row["met"] is not False for row in rows) else 1


if __name__ == "__main__":
    code = main()
    record_run("cli_startup")  # the date benchmarks/results_page.py shows
    sys.exit(code)
