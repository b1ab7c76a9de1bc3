"""``hwnas profile calibrate`` and ``hwnas profile build``: fit a profile's latency model, and
measure this machine to fit one."""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import yaml

from nas.core.config import SpaceConfig, load_search_config
from nas.core.errors import UserError
from nas.data.datasets import input_channels
from nas.deploy.remote import RemoteAgent
from nas.hardware.calibrate import Sibling, calibrate_from_build, calibrate_from_networks, calibrate_profile
from nas.hardware.fitting import Score
from nas.hardware.hwnasbench import load_table
from nas.hardware.profile_build import FORMAT, build_measurements, load_measurements, profile_skeleton
from nas.hardware.profiles import profile_path


def _print_scores(source: Path, out: Path, precision: str, held_out: Score, in_sample: Score) -> None:
    print(f"calibrated {source} -> {out} [{precision}]: held-out half MdAPE {100 * held_out.mdape:.1f}% "
          f"({100 * held_out.within_10pct:.0f}% within 10%, Spearman {held_out.spearman:.3f}, n={held_out.n}); "
          f"final fit on all MdAPE {100 * in_sample.mdape:.1f}%")


def _is_build_file(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("format") == FORMAT)
    except (json.JSONDecodeError, AttributeError):
        return False


def _table_options(args: argparse.Namespace) -> tuple[Sibling | None, dict[str, str]]:
    """The sibling device and assumptions of a calibration on a HW-NAS-Bench table."""
    if not args.metric:
        raise UserError("--metric is required with a HW-NAS-Bench-style table, e.g. --metric raspi4_latency")
    sibling = None
    if args.measured_on:
        if not (args.measured_on_peak and args.measured_on_bandwidth):
            raise UserError("--measured-on needs --measured-on-peak (MAC/s) and --measured-on-bandwidth (GB/s)")
        sibling = Sibling(args.measured_on, args.measured_on_peak, args.measured_on_bandwidth)
    assume = {}
    for item in args.assume or []:
        kind, sep, like = item.partition("=")
        if not sep:
            raise UserError(f"--assume {item!r} not allowed; allowed: KIND=LIKE, e.g. conv=pwconv")
        assume[kind] = like
    return sibling, assume


def _calibrate_networks(source: Path, out: Path, args: argparse.Namespace) -> int:
    path = Path(args.networks)
    if not path.is_file():
        raise UserError(f"--networks {path} is not a file; allowed: a CSV with columns network, width, resolution, "
                        "runtime, precision, latency_ms[, family, source]")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"--networks {path} is not a readable CSV ({exc}); allowed: a UTF-8 CSV file") from None
    result = calibrate_from_networks(source, rows, out=out, precision=args.precision, data_name=path.name,
                                     runtime=args.runtime, scale_from=args.scale_from,
                                     scale_from_runtime=args.scale_from_runtime)
    held = ("not cross-validated (one family)" if result.held_out is None else
            f"leave-one-family-out MdAPE {100 * result.held_out.mdape:.1f}% ({100 * result.held_out.within_20pct:.0f}% "
            f"within 20%, Spearman {result.held_out.spearman:.3f})")
    print(f"calibrated {source} -> {out} [{args.precision}] on {result.used} networks of {result.families} families "
          f"(skipped {sum(result.skipped.values())}: {result.skipped or 'none'}): {held}; final fit on all MdAPE "
          f"{100 * result.in_sample.mdape:.1f}%")
    return 0


def cmd_profile_calibrate(args: argparse.Namespace) -> int:
    source = profile_path(args.profile)
    out = Path(args.out) if args.out else source
    if args.networks:
        return _calibrate_networks(source, out, args)
    measurements = Path(args.measurements)
    if not measurements.is_file():
        raise UserError(f"--measurements {measurements} is not a file; allowed: a file of hwnas profile build or a "
                        f"HW-NAS-Bench-style JSON table")
    if _is_build_file(measurements):
        scores = calibrate_from_build(source, load_measurements(measurements), out=out, seed=args.seed)
        for precision, (held, ins) in scores.items():
            _print_scores(source, out, precision, held, ins)
        return 0
    sibling, assume = _table_options(args)
    held_out, in_sample = calibrate_profile(source, load_table(measurements), args.metric, out=out,
                                            precision=args.precision, seed=args.seed, sibling=sibling, assume=assume,
                                            form=args.form)
    _print_scores(source, out, args.precision, held_out, in_sample)
    return 0


def cmd_profile_build(args: argparse.Namespace) -> int:
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

    space: SpaceConfig | None = None
    in_chs: tuple[int, ...] = (1, 3)
    if args.space:
        cfg = load_search_config(args.space)
        space, in_chs = cfg.space, input_channels(cfg.data.dataset)
    agent = RemoteAgent.from_env(args.remote) if args.remote else None
    data = build_measurements(args.name, n=args.n, seed=args.seed, precisions=precisions, threads=args.threads,
                              repeats=args.repeats, rounds=args.rounds, space=space, space_name=args.space or "",
                              in_chs=in_chs, progress=report, agent=agent)
    measurements = folder / f"{args.name}-measurements.json"
    measurements.write_text(json.dumps(data, indent=1))
    profile = folder / f"{args.name}.yaml"
    if not profile.exists() or args.force:
        profile.write_text(yaml.safe_dump(profile_skeleton(data), sort_keys=False, width=100))
    print(f"wrote {measurements} ({len(data['measurements'])} timings) and {profile}; next: "
          f"hwnas profile calibrate {profile} --measurements {measurements}")
    return 0
