"""hwnas's latency agent: runs on the user's device and times exported model files there.

One file, standard library plus numpy and the runtime the device uses (onnxruntime; LiteRT, with
the Edge TPU delegate when ``libedgetpu`` loads): no torch, no hwnas. Copy it to the device and
run it, or run ``hwnas device serve`` where hwnas is installed::

    HWNAS_AGENT_TOKEN=$(openssl rand -hex 16) python3 device_agent.py --port 8765

Protocol (HTTP, one JSON answer per request, ``Authorization: Bearer <token>`` on every one):

- ``GET /info``: the runtimes this device has, their versions, and the device's conditions.
- ``POST /measure?runtime=onnxruntime|litert&threads=1&warmup=10&repeats=50`` with the model
  file as the body: median and 90th percentile of ``repeats`` timed single-batch runs after
  ``warmup``, on random inputs of the file's own input shape, with the runtime's version and the
  conditions (CPU load, temperature and frequency where the OS tells them).

Bounds: a body over ``--max-bytes`` and a measurement over ``--max-seconds`` are refused or cut
off (the measurement runs in a child process that is killed at the limit); one measurement at a
time (requests queue on a lock, so many search workers can share one device); loopback only
unless ``--host`` says otherwise. The agent never executes anything but the runtime on the file:
the body is handed to onnxruntime or LiteRT as a model, never unpickled or run.
"""
from __future__ import annotations

import argparse
import hmac
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import parse_qs, urlparse

import numpy as np

TOKEN_ENV = "HWNAS_AGENT_TOKEN"
RUNTIMES = ("onnxruntime", "litert")
LIMITS = {"threads": (1, 64), "warmup": (0, 1000), "repeats": (3, 10000)}


def _runtime_versions() -> dict[str, str]:
    """The runtimes importable here, with their versions."""
    out = {}
    for runtime, module, package, name in (("onnxruntime", "onnxruntime", "onnxruntime", "onnxruntime"),
                                           ("litert", "ai_edge_litert.interpreter", "ai-edge-litert", "LiteRT")):
        try:  # optional on the device: only what is installed is offered
            importlib.import_module(module)
            out[runtime] = f"{name} {version(package)}"
        except (ImportError, PackageNotFoundError):
            pass
    return out


def conditions() -> dict[str, Any]:
    """What the OS says of the device now: machine, CPUs, load, and temperature and clock where exposed."""
    info: dict[str, Any] = {"host": platform.node(), "machine": platform.machine(), "system": platform.system(),
                            "python": platform.python_version(), "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_1min"] = round(os.getloadavg()[0], 2)
    for key, path in (("temperature_c", "/sys/class/thermal/thermal_zone0/temp"),
                      ("cpu0_khz", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")):
        try:
            value = float(Path(path).read_text().strip())
            info[key] = value / 1000 if key == "temperature_c" else value
        except (OSError, ValueError):
            pass
    return info


def _timed(run: Any, warmup: int, repeats: int, deadline: float) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return times


def _onnxruntime_runner(path: str, threads: int) -> Any:
    ort = importlib.import_module("onnxruntime")  # the child process imports only the runtime it needs
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(inp.type, np.float32)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return lambda: sess.run(None, {inp.name: x})


def _litert_runner(path: str, threads: int) -> Any:
    litert = importlib.import_module("ai_edge_litert.interpreter")
    delegates = []
    try:
        delegates = [litert.load_delegate("libedgetpu.so.1")]  # the Edge TPU, when its runtime is installed
    except (OSError, ValueError):
        pass
    it = litert.Interpreter(model_path=path, num_threads=threads, experimental_delegates=delegates or None)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(-10, 10, inp["shape"]).astype(inp["dtype"])

    def run() -> None:
        it.set_tensor(inp["index"], x)
        it.invoke()
    return run


def measure_child(path: str, runtime: str, threads: int, warmup: int, repeats: int, seconds: float) -> dict[str, Any]:
    """Time the model at ``path`` (run in a child process the agent kills at its limit)."""
    run = (_onnxruntime_runner if runtime == "onnxruntime" else _litert_runner)(path, threads)
    times = sorted(_timed(run, warmup, repeats, time.perf_counter() + seconds))
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))], "repeats": len(times), "warmup": warmup,
            "threads": threads}


class Agent:
    """The agent's state: token, bounds, and the lock one measurement at a time holds."""

    def __init__(self, token: str, *, max_bytes: int, max_seconds: float) -> None:
        self.token, self.max_bytes, self.max_seconds = token, max_bytes, max_seconds
        self.lock = threading.Lock()
        self.runtimes = _runtime_versions()

    def authorized(self, header: str | None) -> bool:
        given = (header or "").removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def measure(self, body: bytes, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        runtime = (query.get("runtime") or ["onnxruntime"])[0]
        if runtime not in self.runtimes:
            return 400, {"error": f"runtime {runtime!r} not available here; allowed: {', '.join(self.runtimes)}"}
        args = {}
        for key, (lo, hi) in LIMITS.items():
            text = (query.get(key) or [str({"threads": 1, "warmup": 10, "repeats": 50}[key])])[0]
            if not text.isdigit() or not lo <= int(text) <= hi:
                return 400, {"error": f"{key} {text!r} not allowed; allowed: integers {lo} to {hi}"}
            args[key] = int(text)
        suffix = ".onnx" if runtime == "onnxruntime" else ".tflite"
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model{suffix}"
            path.write_bytes(body)
            command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), runtime,
                       *(str(args[k]) for k in ("threads", "warmup", "repeats")), str(self.max_seconds * 0.8)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=self.max_seconds)
            except subprocess.TimeoutExpired:
                return 408, {"error": f"measurement over the agent's {self.max_seconds:g} s limit; allowed: fewer "
                                      "repeats or a faster model"}
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
                return 422, {"error": f"{runtime} could not run the file: {last}"}
            result = json.loads(done.stdout)
        return 200, result | {"runtime": self.runtimes[runtime], "conditions": conditions()}


def _handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "hwnas-agent/1"

        def _answer(self, code: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _allowed(self) -> bool:
            if agent.authorized(self.headers.get("Authorization")):
                return True
            self._answer(401, {"error": "missing or wrong token; allowed: Authorization: Bearer <the agent's token>"})
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self._allowed():
                return
            if urlparse(self.path).path != "/info":
                self._answer(404, {"error": "unknown path; allowed: GET /info, POST /measure"})
                return
            self._answer(200, {"runtimes": agent.runtimes, "conditions": conditions(),
                               "max_bytes": agent.max_bytes, "max_seconds": agent.max_seconds})

        def do_POST(self) -> None:  # noqa: N802
            if not self._allowed():
                return
            url = urlparse(self.path)
            if url.path != "/measure":
                self._answer(404, {"error": "unknown path; allowed: GET /info, POST /measure"})
                return
            length = self.headers.get("Content-Length") or "0"
            size = int(length) if length.isdigit() else -1
            if not 0 < size <= agent.max_bytes:
                if size <= 16 * agent.max_bytes:  # read what the client is sending, so it reads the answer
                    for start in range(0, size, 2 ** 20):
                        self.rfile.read(min(2 ** 20, size - start))
                self.close_connection = True
                self._answer(413, {"error": f"model file of {size} bytes; allowed: 1 to {agent.max_bytes} bytes"})
                return
            code, data = agent.measure(self.rfile.read(size), parse_qs(url.query))
            self._answer(code, data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            sys.stderr.write(f"hwnas agent: {self.address_string()} {format % args}\n")

    return Handler


def serve(*, host: str, port: int, token: str, max_bytes: int, max_seconds: float,
          ready: Any = None) -> None:
    """Serve until interrupted; ``ready(port)`` is called once listening (port 0: any free port)."""
    agent = Agent(token, max_bytes=max_bytes, max_seconds=max_seconds)
    server = ThreadingHTTPServer((host, port), _handler(agent))
    if ready is not None:
        ready(server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # the measurement itself, in the child process serve() starts
        path, runtime, threads, warmup, repeats, seconds = argv[1:7]
        print(json.dumps(measure_child(path, runtime, int(threads), int(warmup), int(repeats), float(seconds))))
        return 0
    parser = argparse.ArgumentParser(description="hwnas latency agent: times model files on this device")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="0: any free port (printed)")
    parser.add_argument("--max-bytes", type=int, default=64 * 2 ** 20)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        print(f"hwnas agent: set {TOKEN_ENV} to a secret of at least 16 characters (e.g. openssl rand -hex 16)",
              file=sys.stderr)
        return 2
    serve(host=args.host, port=args.port, token=token, max_bytes=args.max_bytes, max_seconds=args.max_seconds,
          ready=lambda port: print(f"hwnas agent listening on {args.host}:{port}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
