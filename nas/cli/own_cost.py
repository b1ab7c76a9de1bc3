"""``hwnas cost FILE.onnx`` and ``hwnas cost FILE.py:CALLABLE``: the price of a user's own model
on one profile (``--profile``) or on every bundled profile."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.cost.layers import Layer
from nas.deploy.own_model import OwnModel, load_own_model, parse_input_shape
from nas.hardware.own_pricing import own_table, price_own
from nas.hardware.pricing import Price
from nas.hardware.profiles import HardwareProfile, bundled_profiles, load_profile


def load_from_args(args: argparse.Namespace, ref: str) -> OwnModel:
    """The model ``ref`` names, with ``--weights`` and ``--input-shape`` from ``args``."""
    weights = Path(args.weights) if getattr(args, "weights", None) else None
    return load_own_model(ref, weights=weights, input_shape=parse_input_shape(getattr(args, "input_shape", None)))


def layer_rows(layers: list[Layer]) -> list[dict[str, object]]:
    return [{"name": l.name, "kind": l.kind, "op": l.op, "in_shape": l.in_shape, "out_shape": l.out_shape,
             "macs": l.macs, "weights": l.weight_elems} for l in layers]


def _runnable(profile: HardwareProfile, precision: str) -> str:
    """``precision``, or the one a predicted profile is calibrated at when it has no model at ``precision``."""
    calibrated = list(profile.model or ())
    return precision if not calibrated or precision in calibrated else calibrated[0]


def _line(p: Price) -> str:
    if p.latency_ms is None:
        latency = f"n/a ({p.latency_how})"
    else:
        band = "" if p.band_ms is None else f" (80% band {p.band_ms[0]:.4g}-{p.band_ms[1]:.4g})"
        fallback = "" if p.host_fallback is None else (
            f"; {', '.join(p.unsupported_kinds)} not on the device: from {p.host_fallback.first} on the host")
        latency = f"{p.latency_ms:.4g} ms{band} {p.latency_kind}{fallback}"
    fits = "" if p.memory.fits is None else ("  fits memory" if p.memory.fits else "  DOES NOT FIT memory")
    return f"  {p.profile.tag:28s} {p.costs.precision:5s} {latency}{fits}"


def cmd_cost_own(args: argparse.Namespace) -> int:
    own = load_from_args(args, args.arch)
    profiles = [load_profile(n) for n in ([args.profile] if args.profile else sorted(bundled_profiles()))]
    # on every profile, a device calibrated only at another precision is priced at that one (said per line)
    prices = [price_own(own, p, precision=args.precision if args.profile else _runnable(p, args.precision))
              for p in profiles]
    rows = layer_rows(own_table(own).layers) if args.layers else []
    if args.json:
        out: dict[str, object] = (prices[0].to_json() if args.profile else
                                  {"model": own.name, "prices": [p.to_json() for p in prices]})
        out |= {"source": own.source, "input_shape": list(own.input_shape)}
        print(json.dumps(out | ({"layers": rows} if rows else {}), indent=1, default=list))
        return 0
    c = next((p.costs for p in prices if p.costs.precision == args.precision), prices[0].costs)
    print(f"{own.name} ({own.source}, input {list(own.input_shape)})\n"
          f"  MACs {c.macs:,}  parameters {c.params:,}  weights {c.weight_mb:.3f} MB  peak activations "
          f"{c.peak_activation_mb:.3f} MB ({c.precision})")
    for p in prices:
        print(_line(p))
        if args.profile:
            print(f"    {p.latency_how}")
    for r in rows:
        print(f"  {str(r['name'])[:40]:40s} {str(r['kind']):9s} {str(r['op']):18s} {str(r['out_shape']):20s} "
              f"{r['macs']:>12,} MACs")
    return 0
