"""Fault injection on real ``hwnas`` processes, and fuzzing of what users type and supply.

    .venv/bin/python benchmarks/faults.py [--fuzz-scale 1.0] [--skip-fuzz]

Each fault runs ``hwnas`` as its own process on a small generated dataset and a finished tiny
run: planted pickles in every file hwnas reads (code_executed counts payloads that ran), a cut and
a garbage journal record, an empty, a garbage and a missing study.db, a full disk and a read-only
run folder (a tmpfs mounted here when the machine allows it, as root; else reported as not run),
a PostgreSQL crash-stop of 10 s under 2 workers (when the server programs are installed), and
SIGTERM during a search. A fault is clean when the command ends in one line (exit 2) or recovers
(exit 0), nothing completed is lost, nothing is left RUNNING and no temporary file stays. Then
the fuzz targets of tests/fuzz_cases.py. Writes benchmarks/results/faults.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import bad_inputs, fuzz_cases, pg_server  # noqa: E402
from tests.conftest import Payload  # noqa: E402

from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FUZZ = {"arch": 4000, "config": 3000, "yaml": 3000, "argv": 600, "image": 600}
Fault = dict[str, Any]


def hwnas(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def _errors(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("hwnas: error: ")]


def one_line(out: subprocess.CompletedProcess[str]) -> bool:
    return out.returncode == 2 and len(_errors(out)) == 1 and "Traceback" not in out.stderr


def states(url: str, name: str = "tiny") -> list[TrialState]:
    if url.startswith("journal:"):
        journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url.removeprefix("journal:")))
        return [t.state for t in optuna.load_study(study_name=name, storage=journal).trials]
    storage = optuna.storages.RDBStorage(url)
    try:
        return [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    finally:
        storage.engine.dispose()  # no connection left open: the folder may be remounted read-only next


def finished(url: str) -> int:
    return sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states(url))


def _result(name: str, clean: bool, detail: str, *, lost: int = 0, running: int = 0, executed: int = 0) -> Fault:
    return {"fault": name, "clean": clean, "detail": detail, "completed_lost": lost, "left_running": running,
            "code_executed": executed}


def planted(ws: Path, run: Path, config: Path) -> list[Fault]:
    """A payload in every kind of file hwnas unpickles or loads as tensors."""
    out: list[Fault] = []
    trial = run / "trials" / "0000"
    cases: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("planted pickle: final checkpoint.pt", lambda p: _plant(run / "models" / "0000" / "final-evil" /
                                                                 "checkpoint.pt", p, ["train", str(run), "--trial",
                                                                                      "0", "--stage", "evil"])),
        ("planted pickle: weights.pt for compress", lambda p: _plant(trial / "weights.pt", p, [
            "compress", str(trial), "--recipe", "{quantize: {mode: dynamic}}"])),
        ("planted pickle: --init-from", lambda p: _plant(ws / "w.pt", p, ["train", str(run), "--trial", "0",
                                                                          "--init-from", str(ws / "w.pt"),
                                                                          "--stage", "warm"])),
        ("planted pickle: supernet.pt", lambda p: _plant(ws / "supernet.pt", p, ["supernet", "info",
                                                                                  str(ws / "supernet.pt")])),
        ("planted pickle: CIFAR-10 batch", lambda p: _cifar(ws, p)),
    ]
    for name, prepare in cases:
        marker = ws / f"ran-{len(out)}"
        backup = trial / "weights.pt.bak"
        shutil.copy(trial / "weights.pt", backup)
        result = hwnas(*prepare(marker))
        shutil.move(backup, trial / "weights.pt")
        executed = int(marker.exists())
        out.append(_result(name, one_line(result) and not executed, (_errors(result) or [result.stderr[-200:]])[0],
                           executed=executed))
    return out


def _plant(path: Path, marker: Path, argv: list[str]) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "model": Payload(marker)}, path)
    return argv


def _cifar(ws: Path, marker: Path) -> list[str]:
    root = ws / "cifar" / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}))
    cfg = bad_inputs.base_config(ws / "cifar", **{"data.dataset": "cifar10", "name": "cifar"})
    (ws / "cifar.yaml").write_text(yaml.safe_dump(cfg))
    return ["search", str(ws / "cifar.yaml"), "--out", str(ws / "runs" / "cifar")]


def storage_faults(ws: Path, run: Path, config: Path) -> list[Fault]:
    out = []
    url = f"sqlite:///{run / 'study.db'}"
    before = finished(url)
    for name, spoil in (("study.db emptied to 0 bytes", lambda p: p.write_bytes(b"")),
                        ("study.db of random bytes", lambda p: p.write_bytes(os.urandom(8192))),
                        ("study.db removed", lambda p: p.unlink())):
        copy = ws / "spoiled"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        table = (copy / "trials.csv").read_bytes()
        spoil(copy / "study.db")
        results = [hwnas("front", str(copy)), hwnas("search", str(config), "--out", str(copy))]
        unchanged = (copy / "trials.csv").read_bytes() == table
        out.append(_result(name, all(one_line(r) for r in results) and unchanged, _errors(results[1])[0]
                           if _errors(results[1]) else results[1].stderr[-200:]))
    shutil.rmtree(ws / "spoiled", ignore_errors=True)
    assert finished(url) == before
    return out + journal_faults(ws, config)


def journal_faults(ws: Path, config: Path) -> list[Fault]:
    log, run = ws / "journal.log", ws / "runs" / "journal"
    first = hwnas("search", str(config), "--out", str(run), "--storage", f"journal:{log}", "--trials", "3")
    assert first.returncode == 0, first.stderr[-2000:]
    done = finished(f"journal:{log}")
    with open(log, "ab") as fh:
        fh.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"sta')
    resumed = hwnas("search", str(config), "--out", str(run), "--storage", f"journal:{log}", "--trials", "4")
    after = finished(f"journal:{log}")
    ok = resumed.returncode == 0 and after == 4 and log.read_bytes().endswith(b"\n")
    out = [_result("journal: last record cut mid-line", ok, "dropped: " + str("dropped its last record" in
                                                                               resumed.stderr),
                   lost=max(0, done - after), running=states(f"journal:{log}").count(TrialState.RUNNING))]
    lines = log.read_bytes().splitlines(keepends=True)
    garbage = ws / "garbage.log"
    garbage.write_bytes(b"".join(lines[:3]) + b"not json\n" + b"".join(lines[3:]))
    refused = hwnas("search", str(config), "--out", str(ws / "runs" / "g"), "--storage", f"journal:{garbage}")
    out.append(_result("journal: a garbage record", one_line(refused), (_errors(refused) or [""])[0]))
    return out


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                                capture_output=True).returncode == 0


def disk_faults(ws: Path, config: Path) -> list[Fault]:
    mnt = ws / "small"
    if not _mount(mnt, "700k"):
        return [_result("disk full (tmpfs)", False, "not run: cannot mount a tmpfs here (needs root)"),
                _result("read-only run folder", False, "not run: cannot mount a tmpfs here (needs root)")]
    try:
        run = mnt / "run"
        full = hwnas("search", str(config), "--out", str(run), "--trials", "40")
        url = f"sqlite:///{run / 'study.db'}"
        done = finished(url)
        tmp_left = [str(p) for p in mnt.rglob("*.tmp")]
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        again = hwnas("search", str(config), "--out", str(run), "--trials", str(done + 2))
        running = states(url).count(TrialState.RUNNING)
        ok = one_line(full) and not tmp_left and again.returncode == 0 and finished(url) == done + 2 and not running
        out = [_result("disk full (700 kB tmpfs), then space freed", ok, (_errors(full) or [full.stderr[-200:]])[0],
                       running=running)]
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        front, search = hwnas("front", str(run)), hwnas("search", str(config), "--out", str(run), "--trials", "99")
        out.append(_result("read-only run folder: front reads, search refuses", front.returncode == 0
                           and one_line(search), (_errors(search) or [search.stderr[-200:]])[0]))
        return out
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def outage(ws: Path, config: Path) -> list[Fault]:
    if pg_server.server_bin() is None:
        return [_result("PostgreSQL crash-stop 10 s, 2 workers", False, "not run: PostgreSQL server not installed")]
    with pg_server.controllable_server() as server:
        url = pg_server.create_database(server.url, "outage")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "nas.cli", "search", str(config), "--out", str(ws / "runs" / "pg"),
                "--storage", url, "--trials", "8"]
        procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                  cwd=ROOT) for _ in range(2)]
        time.sleep(8)
        server.stop()
        time.sleep(10)
        server.start()
        outs = [p.communicate(timeout=900) for p in procs]
        codes = [p.returncode for p in procs]
        rdb = url.replace("postgresql://", "postgresql+psycopg://")
        running = states(rdb).count(TrialState.RUNNING)
        ok = codes == [0, 0] and finished(rdb) == 8 and not running and all("Traceback" not in e for _, e in outs)
        return [_result("PostgreSQL crash-stop 10 s, 2 workers", ok, f"exit codes {codes}, finished {finished(rdb)}",
                        running=running)]


def sigterm(ws: Path, config: Path) -> list[Fault]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "search", str(config), "--out", str(ws / "runs" / "t"),
                             "--trials", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    return [_result("SIGTERM during a search", proc.returncode == 130 and "Traceback" not in err and len(lines) <= 1,
                    f"exit {proc.returncode}, {len(lines)} stderr lines")]


def fuzz(scale: float) -> tuple[int, int, list[str]]:
    cases, findings = 0, []
    for name, examples in FUZZ.items():
        try:
            cases += fuzz_cases.run_target(name, max(1, int(examples * scale)), seed=7)
        except Exception as exc:  # noqa: BLE001 - a finding is counted and described, the others still run
            findings.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    return cases, len(findings), findings


def write(faults: list[Fault], cases: int, tracebacks: int, findings: list[str]) -> dict[str, Any]:
    report = {"date": date.today().isoformat(), "faults": len(faults), "faults_clean": sum(f["clean"] for f in faults),
              "completed_lost": sum(f["completed_lost"] for f in faults),
              "left_running": sum(f["left_running"] for f in faults),
              "code_executed": sum(f["code_executed"] for f in faults), "fuzz_cases": cases,
              "fuzz_tracebacks": tracebacks, "fuzz_findings": findings, "cases": faults}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Faults and fuzzing ({report['date']})", "", "Command: `.venv/bin/python benchmarks/faults.py`", "",
             f"- faults: {report['faults_clean']} of {report['faults']} clean; completed trials lost: "
             f"{report['completed_lost']}; left RUNNING: {report['left_running']}; planted code executed: "
             f"{report['code_executed']}",
             f"- fuzz cases: {cases:,} ({', '.join(f'{k} {v}' for k, v in FUZZ.items())} asked); tracebacks: "
             f"{tracebacks}", "", "| fault | clean | what hwnas said or did |", "|---|---|---|"]
    lines += [f"| {f['fault']} | {'yes' if f['clean'] else 'NO'} | {f['detail'][:160].replace('|', '/')} |"
              for f in faults]
    lines += ["", *[f"- fuzz finding: {f}" for f in findings]]
    (RESULTS / "faults.md").write_text("\n".join(lines).rstrip() + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-scale", type=float, default=1.0, help="multiply the fuzz cases per target")
    parser.add_argument("--skip-fuzz", action="store_true", help="faults only")
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="hwnas-faults-"))
    bad_inputs.make_idx(ws / "idx")
    cfg = bad_inputs.base_config(ws / "idx", **{"train.epochs": 4})
    config = ws / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = ws / "runs" / "tiny"
    made = hwnas("search", str(config), "--out", str(run), "--trials", "4")
    assert made.returncode == 0, made.stderr[-2000:]
    faults: list[Fault] = []
    for step in (planted, storage_faults):
        faults += step(ws, run, config)
        print(f"{len(faults)} faults run", flush=True)
    for other in (disk_faults, outage, sigterm):
        faults += other(ws, config)
        print(f"{len(faults)} faults run", flush=True)
    cases, tracebacks, findings = (0, 0, []) if args.skip_fuzz else fuzz(args.fuzz_scale)
    report = write(faults, cases, tracebacks, findings)
    print({k: v for k, v in report.items() if k not in ("cases", "fuzz_findings")})
    shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
    record_run("faults")  # the date benchmarks/results_page.py shows
