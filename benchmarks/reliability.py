"""Fault injection on real workers, and the bad-input table.

    .venv/bin/python benchmarks/reliability.py [--kills-per-storage 8] [--trials 12] [--skip-bad-inputs]

For each storage (SQLite with 2 workers; a journal file and PostgreSQL with 3), workers of one
tiny search are killed at random moments (seeded) with SIGKILL or SIGTERM and restarted, until
the kills are spent; the surviving workers then finish, and one more worker is started at the
end (what a user does after a crash). Counted from the study itself: trials requested and
finished, finished trials that were later lost, candidates evaluated twice, trials left
RUNNING. Then every case of tests/bad_inputs.py runs as its own ``hwnas`` process: exit
code, lines on stderr, files changed. Writes benchmarks/results/reliability.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

# run as a script: the repository on the path, for the tests' bad-input table and PostgreSQL helper
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import bad_inputs, pg_server  # noqa: E402

from nas.search.slots import FINISHED, candidate_of  # noqa: E402
from nas.search.storage import storage_from_url  # noqa: E402
from nas.search.workers import HOLDER  # noqa: E402
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # workers import this checkout


def _hwnas(*args: str, log: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=ENV,
                            cwd=kwargs.get("cwd", ROOT))


def _study(storage: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="tiny", storage=storage_from_url(storage, heartbeat=False))
    except KeyError:
        return None


def fault_run(storage: str, workers: int, kills: int, trials: int, ws: Path, rng: random.Random) -> dict[str, Any]:
    """Workers killed ``kills`` times at random moments and restarted; the study's figures."""
    config = ws / "tiny.yaml"
    cfg = bad_inputs.base_config(ws / "idx", **{"train.epochs": 2, "search.trials": trials})
    config.write_text(yaml.safe_dump(cfg))
    run, log = ws / "run", ws / "workers.log"
    args = ("search", str(config), "--out", str(run), "--storage", storage)
    procs = [_hwnas(*args, log=log) for _ in range(workers)]
    seen_complete: set[int] = set()
    signals = {"SIGKILL": 0, "SIGTERM": 0}
    mid_trial = 0
    started = time.monotonic()
    while sum(signals.values()) < kills and time.monotonic() - started < 900:
        time.sleep(rng.uniform(0.5, 5.0))
        study = _study(storage)
        if study is not None:
            seen_complete |= {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
        live = [i for i, p in enumerate(procs) if p.poll() is None]
        if not live:  # the study finished before the kills were spent: start a fresh round of workers
            if study is not None and sum(t.state in FINISHED for t in study.trials) >= trials:
                break
            procs = [_hwnas(*args, log=log) for _ in range(workers)]
            continue
        holders = {t.system_attrs.get(HOLDER, {}).get("pid") for t in
                   (study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if study else [])}
        busy = [i for i in live if procs[i].pid in holders]
        victim = rng.choice(busy or live)  # mid-trial when any worker is in one
        mid_trial += bool(busy)
        name = rng.choice(["SIGKILL", "SIGTERM"])
        procs[victim].send_signal(getattr(signal, name))
        procs[victim].wait()
        signals[name] += 1
        procs[victim] = _hwnas(*args, log=log)
    codes = [p.wait(timeout=1800) for p in procs]
    final = _hwnas(*args, log=log)  # the user's restart after everything stopped
    codes.append(final.wait(timeout=1800))
    study = _study(storage)
    assert study is not None
    trials_now = study.get_trials(deepcopy=False)
    finished = [t for t in trials_now if t.state in FINISHED]
    keys = [candidate_of(t) for t in finished]
    return {"workers": workers, "requested": trials, "kills": sum(signals.values()), **signals, "mid_trial": mid_trial,
            "finished": len(finished), "completed_lost": len(seen_complete - {t.number for t in finished}),
            "duplicates": len(keys) - len(set(keys)), "left_running": sum(t.state == TrialState.RUNNING
                                                                          for t in trials_now),
            "failed_trials": sum(t.state == TrialState.FAIL for t in trials_now), "exit_codes": sorted(set(codes)),
            "seconds": round(time.monotonic() - started, 1)}


def bad_input_table(ws: Path) -> list[dict[str, Any]]:
    """Each bad input as its own process, with a 120 s limit."""
    code = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(ws / "tiny.yaml"), "--out",
                           str(ws / "runs" / "tiny")], cwd=ws, env=ENV,
                          capture_output=True).returncode
    assert code == 0, "the workspace run failed"
    rows = []
    for case in bad_inputs.CASES:
        argv = case.setup(ws)
        before = bad_inputs.snapshot(ws)
        try:
            out = subprocess.run([sys.executable, "-m", "nas.cli", *argv], cwd=ws, capture_output=True, text=True,
                                 env=ENV, timeout=120)
            exit_code: int | str = out.returncode
            err = [line for line in out.stderr.splitlines() if line.strip()]
        except subprocess.TimeoutExpired:
            exit_code, err = "timeout", ["(hung for 120 s)"]
        changed = bad_inputs.changed(before, bad_inputs.snapshot(ws))
        rows.append({"case": case.name, "exit_code": exit_code, "stderr_lines": len(err),
                     "one_line": len(err) == 1, "files_changed": len(changed),
                     "ok": exit_code == 2 and len(err) == 1 and not changed, "message": err[-1][:160] if err else ""})
        print(("ok  " if rows[-1]["ok"] else "BAD ") + case.name, flush=True)
    return rows


def _markdown(storages: dict[str, dict[str, Any]], rows: list[dict[str, Any]], summary: dict[str, Any],
              command: str) -> str:
    lines = ["# Reliability: workers killed at random, and bad inputs", "",
             f"Command: `{command}`. Workers are real `hwnas search` processes on one tiny search (generated "
             "16x16 idx data, 2 epochs per trial), killed at random moments (seeded) with SIGKILL or SIGTERM and "
             "restarted at once; after the kills the survivors finish and one more worker is started. Figures are "
             "read from the study: `completed_lost` counts trials seen finished during the run that were not "
             "finished at the end; `duplicates` finished trials whose candidate (arch and recipe) another finished "
             "trial already had; `left_running` trials still RUNNING after the final restart.", "",
             "| storage | workers | requested | finished | kills | SIGKILL | SIGTERM | kills mid-trial | completed_lost | "
             "duplicates | left_running | failed trials (lost runs, skipped duplicates) | exit codes | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in storages.items():
        lines.append(f"| {name} | {r['workers']} | {r['requested']} | {r['finished']} | {r['kills']} | {r['SIGKILL']} | "
                     f"{r['SIGTERM']} | {r['mid_trial']} | {r['completed_lost']} | {r['duplicates']} | {r['left_running']} | "
                     f"{r['failed_trials']} | {r['exit_codes']} | {r['seconds']} |")
    lines += ["", f"Totals: {summary['kills']} kills, {summary['completed_lost']} completed trials lost, "
              f"{summary['duplicates']} duplicates, {summary['left_running']} left RUNNING.", ""]
    if rows:
        lines += [f"## Bad inputs: {summary['bad_inputs_ok']} of {summary['bad_inputs']} one line, exit code 2, "
                  "no file changed", "", "| case | exit code | one line | files changed | ok | message |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['exit_code']} | {r['one_line']} | {r['files_changed']} | {r['ok']} | "
                  f"{r['message'].replace('|', '/')} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills-per-storage", type=int, default=8)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-bad-inputs", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    storages: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hwnas-reliability-") as tmp, pg_server.temporary_server() as server:
        for name, workers in (("sqlite", 2), ("journal", 3), ("postgresql", 3)):
            ws = Path(tmp) / name
            ws.mkdir()
            bad_inputs.make_idx(ws / "idx")
            storage = {"sqlite": f"sqlite:///{ws / 'study.db'}", "journal": f"journal:{ws / 'study.log'}",
                       "postgresql": pg_server.create_database(server, "reliability")}[name]
            storages[name] = fault_run(storage, workers, args.kills_per_storage, args.trials, ws, rng)
            print(name, json.dumps(storages[name]), flush=True)
        rows: list[dict[str, Any]] = []
        if not args.skip_bad_inputs:
            ws = Path(tmp) / "bad"
            ws.mkdir()
            bad_inputs.prepare_workspace(ws, lambda argv: 0)
            rows = bad_input_table(ws)
    summary = {key: sum(r[key] for r in storages.values())
               for key in ("kills", "completed_lost", "duplicates", "left_running")}
    summary |= {"bad_inputs": len(rows), "bad_inputs_ok": sum(r["ok"] for r in rows)}
    command = "benchmarks/reliability.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps({**summary, "storages": storages, "bad_input_cases": rows},
                                                         indent=1) + "\n")
    (RESULTS / "reliability.md").write_text(_markdown(storages, rows, summary, command.strip()))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
    record_run("reliability")  # the date benchmarks/results_page.py shows
