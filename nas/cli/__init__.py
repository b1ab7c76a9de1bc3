"""The ``hwnas`` command line. The only place that prints; user errors exit 2 with one line."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from nas.space.arch import ArchSpec
from nas.core.config import SearchConfig, load_search_config
from nas.core.errors import UserError
from nas.search.progress import Progress

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

if TYPE_CHECKING:
    from nas.hardware.calibrate import Score


def _run_storage(run_dir: Path, storage: str | None) -> str:
    from nas.search.study import default_storage

    if storage:
        return storage
    saved = run_dir / "storage.url"
    return saved.read_text().strip() if saved.exists() else default_storage(run_dir)


def _load_run(run_dir: Path, storage: str | None) -> tuple[SearchConfig, optuna.Study | None, optuna.Study | None]:
    """A run folder's config, search study and baselines study (either may not exist yet)."""
    from nas.search.baselines import baselines_study_name
    from nas.search.study import find_study, load_run_config

    cfg = load_run_config(run_dir)
    url = _run_storage(run_dir, storage)
    search, baselines = find_study(cfg, url, cfg.name), find_study(cfg, url, baselines_study_name(cfg))
    if search is None and baselines is None:
        raise UserError(f"{run_dir} holds no study yet; run hwnas search or hwnas baselines first")
    return cfg, search, baselines


def _prepare_run(args: argparse.Namespace) -> tuple[SearchConfig, Path, str]:
    """Config (with --trials applied), run folder and storage URL of a search or baselines command."""
    from nas.search.study import check_run_config

    cfg = load_search_config(args.config)
    if getattr(args, "trials", None) is not None:
        if args.trials < 1:
            raise UserError(f"--trials {args.trials} not allowed; allowed: integers >= 1")
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, trials=args.trials))
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    check_run_config(run_dir, cfg)
    if args.storage:
        (run_dir / "storage.url").write_text(args.storage + "\n")
    return cfg, run_dir, args.storage or _run_storage(run_dir, None)


def _finish_run(cfg: SearchConfig, run_dir: Path, storage: str) -> None:
    from nas.search.report import write_outputs

    _, search, baselines = _load_run(run_dir, storage)
    front = write_outputs(run_dir, budgets=dataclasses.asdict(cfg.search.budgets), search=search, baselines=baselines)
    n_search = int((front["source"] == "search").sum())
    print(f"front: {run_dir / 'front.csv'} ({n_search} Pareto-optimal feasible trials"
          f"{', %d baselines' % (len(front) - n_search) if baselines else ''}); plot: {run_dir / 'front.png'}; "
          f"models: {run_dir / 'models'}; all trials: {run_dir / 'trials.csv'}")
    if len(front):
        print(_front_text(front))


def _with_progress(progress: Progress, storage: str, what: str, run: Callable[..., object]) -> bool:
    """Run a search or baselines loop printing a line per trial; False when interrupted (Ctrl-C)."""
    try:
        run(callbacks=(lambda s, t: print(progress.line(s, t), flush=True),),
            on_start=lambda n, arch: print(progress.start_line(n, arch), flush=True))
    except KeyboardInterrupt:
        print(f"interrupted; finished {what} are kept in {storage}. Run the same command to resume.")
        return False
    return True


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search.study import FINISHED, open_study, run_search

    cfg, run_dir, storage = _prepare_run(args)
    done = sum(t.state in FINISHED for t in open_study(cfg, storage).trials)
    progress = Progress(total=cfg.search.trials, already_done=done)
    print(f"hwnas search {cfg.name}: {cfg.search.trials} trials ({done} already finished), profile "
          f"{cfg.search.profile}, objectives {', '.join(cfg.search.objectives)}, run folder {run_dir}", flush=True)
    if not _with_progress(progress, storage, "trials", functools.partial(run_search, cfg, run_dir, storage=storage)):
        return EXIT_INTERRUPTED
    _finish_run(cfg, run_dir, storage)
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from nas.search.baselines import baseline_grid, baselines_study_name, run_baselines
    from nas.hardware.profiles import load_profile
    from nas.search.study import FINISHED, find_study, load_splits

    cfg, run_dir, storage = _prepare_run(args)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    grid = baseline_grid(cfg, in_chs=splits.preprocess.channels, classes=len(splits.classes))
    existing = find_study(cfg, storage, baselines_study_name(cfg))
    done = {t.user_attrs.get("baseline") for t in (existing.trials if existing else []) if t.state in FINISHED}
    progress = Progress(total=len(grid), already_done=sum(b.name in done for b in grid))
    print(f"hwnas baselines {cfg.name}: {len(grid)} handcrafted networks ({progress.already_done} already finished), "
          f"same data and training budget as the search, budgets {'ignored' if args.ignore_budgets else 'applied'}",
          flush=True)
    run = functools.partial(run_baselines, cfg, run_dir, storage=storage, profile=load_profile(cfg.search.profile),
                            splits=splits, ignore_budgets=args.ignore_budgets)
    if not _with_progress(progress, storage, "baselines", run):
        return EXIT_INTERRUPTED
    _finish_run(cfg, run_dir, storage)
    return 0


def _front_text(front) -> str:  # noqa: ANN001 - a pandas DataFrame
    shown = front[["source", "trial", "name", "accuracy", "latency_ms", "macs", "params", "peak_memory_mb",
                   "arch"]].copy()
    shown["accuracy"] = (shown["accuracy"] * 100).round(2)
    return shown.to_string(index=False)


def cmd_front(args: argparse.Namespace) -> int:
    from nas.search.report import front_table

    _, search, baselines = _load_run(Path(args.run_dir), args.storage)
    front = front_table(search, baselines)
    print(_front_text(front) if len(front) else "no feasible completed trials yet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nas.search.report import export_trial_files

    run_dir = Path(args.run_dir)
    _, search, _ = _load_run(run_dir, args.storage)
    if search is None:
        raise UserError(f"{run_dir} holds no search study; allowed: runs made by hwnas search")
    try:
        path = export_trial_files(search, run_dir, args.trial)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    print(f"exported trial {args.trial}: {path} (with arch.txt and metrics.json)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from nas.search.study import storage_from_url

    run_dir = Path(args.run_dir)
    _load_run(run_dir, args.storage)  # fail early on a folder that holds no study
    url = _run_storage(run_dir, args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {url} (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage_from_url(url, heartbeat=False), host=args.host, port=args.port)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    import json

    from nas.cost.costs import count_costs
    from nas.space.zoo import zoo_entries

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


def _cost_spec(args: argparse.Namespace) -> ArchSpec:
    from nas.space.arch import parse
    from nas.space.zoo import FAMILIES

    if (args.arch is None) == (args.zoo is None):
        raise UserError("give an architecture string or --zoo FAMILY, not both; allowed families: "
                        + ", ".join(FAMILIES))
    if args.arch is not None:
        return parse(args.arch)
    if args.zoo not in FAMILIES or args.zoo == "fbnet":
        raise UserError(f"--zoo {args.zoo!r} not allowed; allowed: {', '.join(f for f in FAMILIES if f != 'fbnet')}")
    kwargs: dict[str, object] = {"resolution": args.resolution or 224, "classes": args.classes or 1000,
                                 "in_chs": args.in_channels or 3}
    if args.width is not None:
        if not 0 < args.width <= 4:
            raise UserError(f"--width {args.width} not allowed; allowed: numbers > 0 and <= 4")
        kwargs["width"] = args.width
    if args.groups is not None:
        if args.zoo != "shufflenet_v1":
            raise UserError("--groups applies to --zoo shufflenet_v1 only")
        kwargs["groups"] = args.groups
    return FAMILIES[args.zoo](**kwargs)


def cmd_cost(args: argparse.Namespace) -> int:
    import json

    from nas.cost.layers import layer_table
    from nas.hardware.pricing import price
    from nas.hardware.profiles import load_profile

    spec = _cost_spec(args)
    report = price(spec, load_profile(args.profile), precision=args.precision)
    if args.layers:
        report["layers"] = [{"name": l.name, "kind": l.kind, "in_shape": l.in_shape, "out_shape": l.out_shape,
                             "macs": l.macs, "weights": l.weight_elems} for l in layer_table(spec)]
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    latency = "n/a" if report["latency_ms"] is None else f"{report['latency_ms']:.4f} ms"
    print(f"{report['arch']}\n  MACs {report['macs']:,}  parameters {report['parameters']:,}  weights "
          f"{report['weight_mb']:.3f} MB  peak activations {report['peak_activation_mb']:.3f} MB ({args.precision})\n"
          f"  latency {latency} [{report['latency_kind']}, profile {report['profile']}@{report['profile_version']}: "
          f"{report['latency_how']}]")
    if report.get("fits_device_memory") is not None:
        print(f"  device memory {report['memory_capacity_mb']} MB: "
              f"{'fits' if report['fits_device_memory'] else 'DOES NOT FIT'}")
    if "on_chip_mb" in report:
        streamed = float(report["weights_streamed_mb"])  # type: ignore[arg-type]
        print(f"  on-chip parameter memory {report['on_chip_mb']} MB: " + (
            f"{streamed:.3f} MB of weights stream from outside each inference" if streamed else "weights fit on chip"))
    for layer in report.get("layers", []):
        print(f"  {layer['name']:28s} {layer['kind']:8s} {str(layer['out_shape']):18s} {layer['macs']:>12,} MACs")
    return 0


def _trained_model_files(model_dir: Path) -> tuple[Path, Path, str]:
    """(run folder, weights file, arch) of a trial folder (``trials/<n>``) or model folder (``models/<n>``)."""
    from nas.deploy.export import read_metadata

    run_dir = next((p for p in list(model_dir.parents)[:3] if (p / "config.yaml").is_file()), None)
    if not model_dir.is_dir() or run_dir is None:
        raise UserError(f"{model_dir} is not a model folder of a run; allowed: runs/<name>/trials/<n> or "
                        f"runs/<name>/models/<n>")
    weights = model_dir / "weights.pt"
    if not weights.is_file() and (model_dir / "metrics.json").is_file():
        import json

        weights = run_dir / json.loads((model_dir / "metrics.json").read_text()).get("weights_path", "")
    if not weights.is_file() or not (model_dir / "model.onnx").is_file():
        raise UserError(f"{model_dir} lacks model.onnx or trained weights (weights.pt); compress takes trained "
                        f"trials of hwnas search")
    return run_dir, weights, read_metadata(model_dir / "model.onnx")["hwnas.arch"]


def cmd_compress(args: argparse.Namespace) -> int:
    import hashlib
    import json

    import torch

    from compress.pipeline import compress
    from compress.recipe import load_recipe
    from nas.space.arch import parse
    from nas.space.builder import build
    from nas.search.study import load_run_config, load_splits

    recipe = load_recipe(args.recipe)
    model_dir = Path(args.model_dir)
    run_dir, weights, arch = _trained_model_files(model_dir)
    cfg = load_run_config(run_dir)
    spec = parse(arch)
    model = build(spec)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    print(f"hwnas compress {model_dir}: {arch}\n  recipe {recipe.to_json()}", flush=True)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    result = compress(model.eval(), spec, recipe, splits, seed=cfg.seed)
    name = args.name or "recipe-" + hashlib.sha1(recipe.to_json().encode()).hexdigest()[:8]
    out = model_dir / "compressed" / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(result.onnx)
    (out / "report.json").write_text(json.dumps(result.report, indent=1) + "\n")
    b, c = result.report["baseline"], result.report["compressed"]
    lines = [f"# {name}", "", f"`{arch}`, recipe `{recipe.to_json()}`", "",
             "| | test accuracy | file bytes | MACs | latency ms |", "|---|---|---|---|---|"]
    for label, row in (("before", b), ("after", c)):
        lines.append(f"| {label} | {100 * row['test_accuracy']:.2f}% | {row['file_bytes']:,} | {row['macs']:,} | "  # type: ignore[index]
                     f"{row['latency_ms']:.4f} |")  # type: ignore[index]
    lines += ["", f"Latency: {result.report['latency_how']}.", ""]
    (out / "report.md").write_text("\n".join(lines))
    r = result.report
    print(f"  accuracy {100 * b['test_accuracy']:.2f}% -> {100 * c['test_accuracy']:.2f}%, file "  # type: ignore[index]
          f"{b['file_bytes']:,} -> {c['file_bytes']:,} B ({r['size_ratio']:.2f}x smaller), MACs x{r['macs_ratio']:.2f}, "  # type: ignore[index]
          f"latency {b['latency_ms']:.4f} -> {c['latency_ms']:.4f} ms ({r['speedup']:.2f}x) [{r['latency_how']}]\n"  # type: ignore[index]
          f"  wrote {out}/model.onnx, report.json, report.md")
    return 0


def _print_scores(source: Path, out: Path, precision: str, held_out: Score, in_sample: Score) -> None:
    print(f"calibrated {source} -> {out} [{precision}]: held-out half MdAPE {100 * held_out.mdape:.1f}% "
          f"({100 * held_out.within_10pct:.0f}% within 10%, Spearman {held_out.spearman:.3f}, n={held_out.n}); "
          f"final fit on all MdAPE {100 * in_sample.mdape:.1f}%")


def cmd_profile_calibrate(args: argparse.Namespace) -> int:
    import json

    from nas.hardware.calibrate import calibrate_from_build, calibrate_profile
    from nas.hardware.hwnasbench import load_table
    from nas.hardware.profile_build import FORMAT, load_measurements
    from nas.hardware.profiles import profile_path

    source = profile_path(args.profile)
    out = Path(args.out) if args.out else source
    measurements = Path(args.measurements)
    if not measurements.is_file():
        raise UserError(f"--measurements {measurements} is not a file; allowed: a file of hwnas profile build or a "
                        f"HW-NAS-Bench-style JSON table")
    try:
        is_build = json.loads(measurements.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError):
        is_build = False
    if is_build:
        for precision, (held, ins) in calibrate_from_build(source, load_measurements(measurements), out=out,
                                                           seed=args.seed).items():
            _print_scores(source, out, precision, held, ins)
        return 0
    if not args.metric:
        raise UserError("--metric is required with a HW-NAS-Bench-style table, e.g. --metric raspi4_latency")
    sibling = None
    if args.measured_on:
        from nas.hardware.calibrate import Sibling

        if not (args.measured_on_peak and args.measured_on_bandwidth):
            raise UserError("--measured-on needs --measured-on-peak (MAC/s) and --measured-on-bandwidth (GB/s)")
        sibling = Sibling(args.measured_on, args.measured_on_peak, args.measured_on_bandwidth)
    assume = {}
    for item in args.assume or []:
        kind, sep, like = item.partition("=")
        if not sep:
            raise UserError(f"--assume {item!r} not allowed; allowed: KIND=LIKE, e.g. conv=pwconv")
        assume[kind] = like
    held_out, in_sample = calibrate_profile(source, load_table(measurements), args.metric, out=out,
                                            precision=args.precision, seed=args.seed, sibling=sibling, assume=assume,
                                            form=args.form)
    _print_scores(source, out, args.precision, held_out, in_sample)
    return 0


def cmd_profile_build(args: argparse.Namespace) -> int:
    import json
    import time

    import yaml

    from nas.hardware.profile_build import build_measurements, profile_skeleton

    if args.n < 10:
        raise UserError(f"--n {args.n} not allowed; allowed: integers >= 10 (calibration fits about 20 parameters)")
    if args.rounds < 1:  # before the peak and bandwidth probes, not after
        raise UserError(f"--rounds {args.rounds} not allowed; allowed: integers >= 1")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    precisions = tuple(args.precision or ["fp32", "int8"])
    started = time.perf_counter()

    def report(done: int, total: int, arch: str) -> None:
        if done % 10 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"[{done:>4}/{total}] network timings ({args.rounds} passes) at {', '.join(precisions)} | "
                  f"elapsed {elapsed:.0f}s ETA {elapsed / done * (total - done):.0f}s | last {arch}", flush=True)

    space, in_chs = None, (1, 3)
    if args.space:
        from nas.core.config import load_search_config

        cfg = load_search_config(args.space)
        # image folders may hold either; the built-in datasets have one
        space, in_chs = cfg.space, {"fashion-mnist": (1,), "mnist": (1,), "cifar10": (3,)}.get(cfg.data.dataset, (1, 3))
    data = build_measurements(args.name, n=args.n, seed=args.seed, precisions=precisions, threads=args.threads,
                              repeats=args.repeats, rounds=args.rounds, space=space, space_name=args.space or "",
                              in_chs=in_chs, progress=report)
    measurements = folder / f"{args.name}-measurements.json"
    measurements.write_text(json.dumps(data, indent=1))
    profile = folder / f"{args.name}.yaml"
    if not profile.exists() or args.force:
        profile.write_text(yaml.safe_dump(profile_skeleton(data), sort_keys=False, width=100))
    print(f"wrote {measurements} ({len(data['measurements'])} timings) and {profile}; next: "  # type: ignore[arg-type]
          f"hwnas profile calibrate {profile} --measurements {measurements}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwnas", description="Hardware-aware neural architecture search.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library details")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("search", help="run or resume a search", description="Run or resume a search from a YAML file.")
    p.add_argument("config", help="a searches/*.yaml path or the name of a bundled search (e.g. quickstart)")
    p.add_argument("--trials", type=int, help="total number of finished trials wanted (overrides search.trials)")
    p.add_argument("--storage", help="Optuna storage: an SQLAlchemy URL (sqlite:///..., postgresql://...) or "
                                     "journal:PATH (default: sqlite file study.db in the run folder)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("baselines", help="train handcrafted baselines beside a search",
                       description="Train and evaluate the config's handcrafted grid (MobileNetV2 width x resolution, "
                                   "ShuffleNetV1 groups, ShuffleNetV2 widths, fitted to the input size) with the "
                                   "search's data, training budget and budgets; resumable; shown in front.csv/png.")
    p.add_argument("config", help="a searches/*.yaml path or the name of a bundled search")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file study.db in the run folder)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--ignore-budgets", action="store_true",
                   help="train over-budget baselines too (recorded as infeasible) instead of rejecting them")
    p.set_defaults(func=cmd_baselines)
    p = sub.add_parser("front", help="print the Pareto front of a run", description="Print the Pareto front of a run.")
    p.add_argument("run_dir")
    p.add_argument("--storage", help="Optuna storage URL if the run used one")
    p.set_defaults(func=cmd_front)
    p = sub.add_parser("compress", help="apply a compression recipe to a trained model of a run",
                       description="Prune (with fine-tuning, optionally distilled) and/or quantize a trained trial "
                                   "and report accuracy, file size, MACs and measured latency before and after.")
    p.add_argument("model_dir", help="runs/<name>/trials/<n> or runs/<name>/models/<n>")
    p.add_argument("--recipe", required=True, help="a recipe YAML/JSON file or an inline mapping, e.g. "
                                                   "'{prune: {criterion: l1, target_macs: 0.5}, quantize: {mode: static}}'")
    p.add_argument("--name", help="output folder name under MODEL_DIR/compressed (default: recipe-<hash>)")
    p.set_defaults(func=cmd_compress)
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
    p = sub.add_parser("cost", help="price one architecture on a hardware profile",
                       description="MACs, parameters, weight and peak activation memory, and latency of an "
                                   "architecture string or a zoo network, saying how the latency was obtained.")
    p.add_argument("arch", nargs="?", help="a canonical architecture string")
    p.add_argument("--zoo", help="a reference family instead: mobilenet_v1, mobilenet_v2, shufflenet_v1, shufflenet_v2")
    p.add_argument("--width", type=float)
    p.add_argument("--resolution", type=int)
    p.add_argument("--groups", type=int, help="ShuffleNetV1 groups")
    p.add_argument("--classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--profile", default="cpu", help="a bundled profile name or a profile YAML path (default cpu)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--layers", action="store_true", help="add the per-layer table of the deployed graph")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cost)
    profile = sub.add_parser("profile", help="hardware profile tools",
                             description="Hardware profile tools.").add_subparsers(dest="profile_command", required=True)
    p = profile.add_parser("calibrate", help="fit a predicted profile's latency model to measured block latencies",
                           description="Fit efficiencies and overheads of a predicted profile to per-block latencies "
                                       "(HW-NAS-Bench's table format) and write a new profile version with the fit "
                                       "and its cross-validated error (fit on half the blocks, error on the other).")
    p.add_argument("profile", help="a bundled profile name or a profile YAML path")
    p.add_argument("--measurements", required=True,
                   help="a file written by hwnas profile build, or a HW-NAS-Bench-style JSON table {metric: {key: ms}}")
    p.add_argument("--metric", help="with a HW-NAS-Bench table: which table of the file, e.g. raspi4_latency")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="the precision the measurements were taken at (its peak is used)")
    p.add_argument("--out", help="where to write the new version (default: over the profile file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the half/half split")
    p.add_argument("--measured-on", help="the measurements come from this sibling device (e.g. 'Jetson TX2'); "
                                         "its fit carries across to the profile's own peak and bandwidth")
    p.add_argument("--measured-on-peak", type=float, help="the sibling's peak MAC/s at --precision")
    p.add_argument("--measured-on-bandwidth", type=float, help="the sibling's memory bandwidth, GB/s")
    p.add_argument("--form", default="auto", choices=["auto", "roofline", "linear"],
                   help="with a HW-NAS-Bench table: the model form to fit; auto fits both and keeps the one with the "
                        "lower held-out error (default). profile build files always fit the linear form")
    p.add_argument("--assume", action="append", metavar="KIND=LIKE",
                   help="with a HW-NAS-Bench table: a compute kind the table lacks runs with the fitted parameters of "
                        "one it has (e.g. conv=pwconv); written into the fit note; repeatable")
    p.set_defaults(func=cmd_profile_calibrate)
    p = profile.add_parser("build", help="measure this machine with onnxruntime for calibrate",
                           description="Time a designed set of networks with onnxruntime on this machine (and its "
                                       "peak MAC rate, bandwidth and layout), write NAME-measurements.json with the "
                                       "conditions and an uncalibrated profile NAME.yaml; then run calibrate.")
    p.add_argument("--name", required=True, help="the profile's name")
    p.add_argument("--out", default=".", help="folder for NAME.yaml and NAME-measurements.json (default: .)")
    p.add_argument("--n", type=int, default=300, help="networks in the designed set (default 300)")
    p.add_argument("--precision", action="append", choices=["fp32", "int8", "fp16"],
                   help="precision to measure; repeat for several (default: fp32 and int8)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=200, help="timed runs per network; the median counts (default 200)")
    p.add_argument("--rounds", type=int, default=3,
                   help="passes over the whole set; each network's figure is the median of its passes (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--space", help="time random networks of this search file's space instead of the generic "
                                   "designed set (a model for the space you will search)")
    p.add_argument("--force", action="store_true", help="overwrite an existing NAME.yaml with version 1")
    p.set_defaults(func=cmd_profile_build)
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
