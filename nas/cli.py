"""The ``hwnas`` command line. The only place that prints; user errors exit 2 with one line."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna

from nas.config import load_search_config
from nas.errors import UserError

EXIT_USER_ERROR = 2


def _run_storage(run_dir: Path, storage: str | None) -> str:
    from nas.study import default_storage

    if storage:
        return storage
    saved = run_dir / "storage.url"
    return saved.read_text().strip() if saved.exists() else default_storage(run_dir)


def _load_run_study(run_dir: Path, storage: str | None) -> optuna.Study:
    from nas.study import load_run_config, open_study

    cfg = load_run_config(run_dir)
    return open_study(cfg, _run_storage(run_dir, storage), create=False)


def cmd_search(args: argparse.Namespace) -> int:
    from nas.progress import Progress
    from nas.report import write_outputs
    from nas.study import FINISHED, check_run_config, default_storage, open_study, run_search

    cfg = load_search_config(args.config)
    if args.trials is not None:
        if args.trials < 1:
            raise UserError(f"--trials {args.trials} not allowed; allowed: integers >= 1")
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, trials=args.trials))
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    check_run_config(run_dir, cfg)
    storage = args.storage or default_storage(run_dir)
    if args.storage:
        (run_dir / "storage.url").write_text(args.storage + "\n")
    done = sum(t.state in FINISHED for t in open_study(cfg, storage).trials)
    progress = Progress(total=cfg.search.trials, already_done=done)
    print(f"hwnas search {cfg.name}: {cfg.search.trials} trials ({done} already finished), profile "
          f"{cfg.search.profile}, objectives {', '.join(cfg.search.objectives)}, run folder {run_dir}", flush=True)
    try:
        result = run_search(cfg, run_dir, storage=storage,
                            callbacks=[lambda s, t: print(progress.line(s, t), flush=True)],
                            on_start=lambda n, arch: print(progress.start_line(n, arch), flush=True))
    except KeyboardInterrupt:
        print(f"interrupted; completed trials are kept in {storage}. Run the same command to resume.")
        return 130
    front = write_outputs(result.study, run_dir, budgets=dataclasses.asdict(cfg.search.budgets))
    print(f"front: {run_dir / 'front.csv'} ({len(front)} Pareto-optimal feasible trials); plot: "
          f"{run_dir / 'front.png'}; models: {run_dir / 'models'}; all trials: {run_dir / 'trials.csv'}")
    if len(front):
        print(_front_text(front))
    return 0


def _front_text(front) -> str:  # noqa: ANN001 - a pandas DataFrame
    shown = front[["trial", "accuracy", "latency_ms", "macs", "params", "peak_memory_mb", "arch"]].copy()
    shown["accuracy"] = (shown["accuracy"] * 100).round(2)
    return shown.to_string(index=False)


def cmd_front(args: argparse.Namespace) -> int:
    from nas.report import front_table

    front = front_table(_load_run_study(Path(args.run_dir), args.storage))
    print(_front_text(front) if len(front) else "no feasible completed trials yet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nas.report import export_trial_files

    run_dir = Path(args.run_dir)
    try:
        path = export_trial_files(_load_run_study(run_dir, args.storage), run_dir, args.trial)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    print(f"exported trial {args.trial}: {path} (with arch.txt and metrics.json)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    run_dir = Path(args.run_dir)
    _load_run_study(run_dir, args.storage)  # fail early on a folder that holds no study
    storage = _run_storage(run_dir, args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {storage} (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    import json

    from nas.costs import count_costs
    from nas.zoo import zoo_entries

    for name, value in (("--classes", args.classes), ("--in-channels", args.in_channels),
                        ("--resolution", args.resolution)):
        if value is not None and value < 1:
            raise UserError(f"{name} {value} not allowed; allowed: integers >= 1")
    rows = []
    for entry in zoo_entries(classes=args.classes, in_chs=args.in_channels or 3, resolution=args.resolution):
        costs = count_costs(entry.spec)
        rows.append({"name": entry.name, "family": entry.family, "width": entry.width, "resolution": entry.resolution,
                     "groups": entry.groups, "arch": entry.spec.format(), "macs": costs.macs,
                     "parameters": costs.params, "weight_mb": round(costs.weight_mb, 3),
                     "peak_activation_mb": round(costs.peak_activation_mb, 3)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['name']:32s} {r['macs'] / 1e6:9.1f}M MACs {r['parameters'] / 1e6:7.3f}M params  {r['arch']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwnas", description="Hardware-aware neural architecture search.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library details")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("search", help="run or resume a search", description="Run or resume a search from a YAML file.")
    p.add_argument("config", help="a searches/*.yaml path or the name of a bundled search (e.g. quickstart)")
    p.add_argument("--trials", type=int, help="total number of finished trials wanted (overrides search.trials)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file study.db in the run folder)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("front", help="print the Pareto front of a run", description="Print the Pareto front of a run.")
    p.add_argument("run_dir")
    p.add_argument("--storage", help="Optuna storage URL if the run used one")
    p.set_defaults(func=cmd_front)
    p = sub.add_parser("export", help="export a completed trial's ONNX model",
                       description="Write models/<trial>/model.onnx, arch.txt and metrics.json for a completed trial.")
    p.add_argument("run_dir")
    p.add_argument("--trial", type=int, required=True)
    p.add_argument("--storage", help="Optuna storage URL if the run used one")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("dashboard", help="serve optuna-dashboard for a run",
                       description="Serve optuna-dashboard for a run's study (bound to localhost by default).")
    p.add_argument("run_dir")
    p.add_argument("--storage", help="Optuna storage URL if the run used one")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)
    p = sub.add_parser("zoo", help="list reference architectures with MACs and parameters",
                       description="List reference families (MobileNetV1/V2, ShuffleNetV1/V2, FBNet) as arch strings "
                                   "of the grammar, with fvcore MACs and parameters.")
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    p.add_argument("--classes", type=int, help="classifier outputs (default: 1000; FBNet CIFAR rows: 100)")
    p.add_argument("--in-channels", type=int, help="input channels (default 3)")
    p.add_argument("--resolution", type=int, help="input resolution for every row (default: each row's own)")
    p.set_defaults(func=cmd_zoo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
