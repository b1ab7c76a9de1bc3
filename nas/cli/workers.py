"""``hwnas search --workers N``: N local worker processes on one study, their lines prefixed.

Each worker is an ordinary ``hwnas search`` on the run's storage (passed in the environment, so
a password never shows in the process list); the launcher forwards Ctrl-C and SIGTERM to them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from nas.core.config import SearchConfig
from nas.search.run_folder import STORAGE_ENV

# set for the workers this command starts: the parent has already priced the budgets
BUDGETS_CHECKED_ENV = "HWNAS_BUDGETS_CHECKED"


def _relay(stream: IO[str], prefix: str) -> None:
    for line in stream:
        print(f"{prefix}{line}", end="", flush=True)


def worker_command(config: str, run_dir: Path, cfg: SearchConfig, profile: str | None = None) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", config, "--out", str(run_dir), "--trials",
            str(cfg.search.trials), *(["--profile", profile] if profile else [])]


def run_workers(n: int, config: str, run_dir: Path, cfg: SearchConfig, storage: str,
                profile: str | None = None) -> int:
    """Start ``n`` workers and wait for them; the largest exit code (130 when interrupted)."""
    env = {**os.environ, STORAGE_ENV: storage, BUDGETS_CHECKED_ENV: "1"}  # checked once, here
    procs = [subprocess.Popen(worker_command(config, run_dir, cfg, profile), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True) for _ in range(n)]
    relays = [threading.Thread(target=_relay, args=(p.stdout, f"[w{i}] "), daemon=True) for i, p in enumerate(procs)]
    for thread in relays:
        thread.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        return 130
    finally:
        for thread in relays:
            thread.join(timeout=5)
    return max(codes)
