"""Does the latency agent measure what this host measures? Side by side on the same files.

    .venv/bin/python benchmarks/device_agent.py [--networks 12] [--rounds 3]

Starts ``hwnas device serve`` on loopback (this machine stands in for the device), exports
``--networks`` random networks of the quickstart space as ONNX, and times each one ``--rounds``
times through the agent and with onnxruntime in this process, alternately (1 thread, 200 runs
each, median), so both see the same machine load. Writes benchmarks/results/device_agent.md and
.json: per network the two medians and their ratio, and the median ratio (target: within 10%).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_page import record_run

from nas.core.config import load_search_config
from nas.deploy.export import DeployInfo, to_onnx
from nas.deploy.host_latency import measure_latency
from nas.deploy.remote import RemoteAgent
from nas.space.builder import build
from nas.space.sampler import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TOKEN = "benchmark-token-0123456789"


class _Random:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def _agent() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "HWNAS_AGENT_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "device", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the agent did not start")


def _networks(n: int) -> list[tuple[str, bytes, tuple[int, int, int, int]]]:
    cfg = load_search_config("quickstart")
    space = SearchSpace(cfg.space, in_chs=1, num_classes=10)
    out = []
    for i in range(n):
        spec = space.sample(_Random(i))
        shape = (1, spec.in_chs, spec.resolution, spec.resolution)
        info = DeployInfo(spec.format(), shape, "none", (0.5,), (0.5,), "gray", tuple(str(c) for c in range(10)))
        out.append((spec.format(), to_onnx(build(spec).eval(), info), shape))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    proc, url = _agent()
    agent = RemoteAgent(url, TOKEN)
    rows: list[dict[str, Any]] = []
    try:
        for arch, onnx, shape in _networks(args.networks):
            remote, local = [], []
            for _ in range(args.rounds):  # alternately, so both see the same load
                remote.append(agent.measure(onnx, repeats=200).median_ms)
                local.append(measure_latency(onnx, shape, repeats=200).median_ms)
            r, lo = statistics.median(remote), statistics.median(local)
            rows.append({"arch": arch, "agent_ms": round(r, 5), "local_ms": round(lo, 5), "ratio": round(r / lo, 4)})
            print(f"{len(rows)}/{args.networks} agent {r:.4f} ms, local {lo:.4f} ms, ratio {r / lo:.3f}", flush=True)
    finally:
        proc.kill()
    ratio = statistics.median(row["ratio"] for row in rows)
    result = {"networks": len(rows), "rounds": args.rounds, "median_ratio": round(ratio, 4),
              "target": "median ratio within 10%", "met": 0.9 <= ratio <= 1.1, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "device_agent.json").write_text(json.dumps(result, indent=1))
    lines = ["# The latency agent against this host's own measurement", "",
             f"Command: `.venv/bin/python benchmarks/device_agent.py --networks {args.networks} --rounds "
             f"{args.rounds}`. The agent (`hwnas device serve`, loopback) and onnxruntime in the benchmark's "
             "process time the same ONNX files alternately (1 thread, median of 200 runs, median over rounds).", "",
             f"Median agent / local ratio over {len(rows)} random quickstart networks: **{ratio:.3f}** (target "
             f"within 10%: {'met' if result['met'] else 'NOT met'}).", "",
             "| arch | agent ms | local ms | ratio |", "|---|---|---|---|"]
    lines += [f"| `{r['arch']}` | {r['agent_ms']} | {r['local_ms']} | {r['ratio']} |" for r in rows]
    (RESULTS / "device_agent.md").write_text("\n".join(lines) + "\n")
    print(lines[4])
    return 0


if __name__ == "__main__":
    code = main()
    record_run("device_agent")
    sys.exit(code)
