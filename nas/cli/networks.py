"""``hwnas zoo`` and ``hwnas cost``: reference networks, and the price of one network on a profile."""
from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from nas.core.errors import UserError
from nas.cost.costs import count_costs
from nas.cost.layers import layer_table
from nas.deploy.own_model import is_model_ref
from nas.hardware.pricing import Price, price
from nas.hardware.profiles import load_profile
from nas.space.arch import ArchSpec, parse
from nas.space.zoo import DEFAULT_RESOLUTION, FAMILIES, zoo_entries


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value} not allowed; allowed: integers >= 1")


def cmd_zoo(args: argparse.Namespace) -> int:
    _check_positive(classes=args.classes, in_channels=args.in_channels, resolution=args.resolution)
    rows: list[dict[str, Any]] = []
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
    if (args.arch is None) == (args.zoo is None):
        raise UserError("give an architecture string or --zoo FAMILY, not both; allowed families: "
                        + ", ".join(FAMILIES))
    if args.arch is not None:
        return parse(args.arch)
    if args.zoo not in FAMILIES or args.zoo == "fbnet":
        raise UserError(f"--zoo {args.zoo!r} not allowed; allowed: {', '.join(f for f in FAMILIES if f != 'fbnet')}")
    kwargs: dict[str, Any] = {"resolution": args.resolution or DEFAULT_RESOLUTION.get(args.zoo, 224), "classes": args.classes or 1000,
                              "in_chs": args.in_channels or 3}
    if args.width is not None:
        if not 0 < args.width <= 4:
            raise UserError(f"--width {args.width} not allowed; allowed: numbers > 0 and <= 4")
        kwargs["width"] = args.width
    if args.groups is not None:
        if args.zoo != "shufflenet_v1":
            raise UserError("--groups applies to --zoo shufflenet_v1 only")
        kwargs["groups"] = args.groups
    # the grammar's bounds (resolution, channels, repeats) apply to zoo networks too
    return parse(FAMILIES[args.zoo](**kwargs).format())


def _price_text(p: Price) -> str:
    c, m = p.costs, p.memory
    latency = "n/a" if p.latency_ms is None else f"{p.latency_ms:.4f} ms"
    if p.band_ms is not None:
        latency += f" (80% band {p.band_ms[0]:.4g}-{p.band_ms[1]:.4g} ms: held-out error)"
    elif p.latency_kind == "predicted" and p.latency_ms is not None:
        latency += " (no error band: the profile's error was not measured per network)"
    lines = [p.arch, f"  MACs {c.macs:,}  parameters {c.params:,}  weights {c.weight_mb:.3f} MB  peak activations "
                     f"{c.peak_activation_mb:.3f} MB ({c.precision})",
             f"  latency {latency} [{p.latency_kind}, profile {p.profile.tag}: {p.latency_how}]"]
    if m.fits is not None:
        lines.append(f"  device memory {m.capacity_mb} MB: {'fits' if m.fits else 'DOES NOT FIT'}")
    if m.on_chip_mb is not None:
        streamed = m.weights_streamed_mb or 0.0
        lines.append(f"  on-chip parameter memory {m.on_chip_mb} MB: " + (
            f"{streamed:.3f} MB of weights stream from outside each inference" if streamed else "weights fit on chip"))
    return "\n".join(lines)


def cmd_cost(args: argparse.Namespace) -> int:
    if args.arch is not None and is_model_ref(args.arch):
        if args.zoo is not None:
            raise UserError("give a model file or --zoo FAMILY, not both")
        return int(importlib.import_module("nas.cli.own_cost").cmd_cost_own(args))
    if args.weights is not None or args.input_shape is not None:
        raise UserError("--weights and --input-shape apply to a model file (FILE.onnx or FILE.py:CALLABLE)")
    spec = _cost_spec(args)
    result = price(spec, load_profile(args.profile or "cpu"), precision=args.precision)
    layers = [{"name": l.name, "kind": l.kind, "in_shape": l.in_shape, "out_shape": l.out_shape, "macs": l.macs,
               "weights": l.weight_elems} for l in layer_table(spec)] if args.layers else []
    if args.json:
        print(json.dumps(result.to_json() | ({"layers": layers} if args.layers else {}), indent=1))
        return 0
    print(_price_text(result))
    for layer in layers:
        print(f"  {layer['name']:28s} {layer['kind']:8s} {str(layer['out_shape']):18s} {layer['macs']:>12,} MACs")
    return 0
