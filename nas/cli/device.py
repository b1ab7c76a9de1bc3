"""``hwnas device serve`` and ``hwnas device measure``: the latency agent on the user's device."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from nas.core.errors import UserError
from nas.deploy.device_agent import TOKEN_ENV, serve
from nas.deploy.remote import RemoteAgent


def cmd_device_serve(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        raise UserError(f"set {TOKEN_ENV} to a secret of at least 16 characters (e.g. openssl rand -hex 16); the "
                        "agent refuses to serve without one")
    if not 1 <= args.max_bytes <= 2 ** 31 or not 0 < args.max_seconds <= 3600:
        raise UserError("--max-bytes 1 to 2147483648 and --max-seconds 0 to 3600 allowed")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(f"hwnas device serve: listening on {args.host}, beyond loopback: anyone who can reach it and has the "
              "token can make this device time files", flush=True)
    try:
        serve(host=args.host, port=args.port, token=token, max_bytes=args.max_bytes, max_seconds=args.max_seconds,
              ready=lambda port: print(f"hwnas device serve: agent listening on {args.host}:{port}", flush=True))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def cmd_device_measure(args: argparse.Namespace) -> int:
    path = Path(args.model)
    if path.suffix not in (".onnx", ".tflite") or not path.is_file():
        raise UserError(f"{path} not allowed; allowed: an existing .onnx or .tflite file")
    runtime = "onnxruntime" if path.suffix == ".onnx" else "litert"
    agent = RemoteAgent.from_env(args.url, ride_out_s=0)
    m = agent.measure(path.read_bytes(), runtime=runtime, threads=args.threads, warmup=args.warmup,
                      repeats=args.repeats)
    print(f"{path.name}: median {m.median_ms:.4f} ms, 90th percentile {m.p90_ms:.4f} ms ({m.describe()})")
    return 0
