"""HW-NAS-Bench block names for FBNet-space networks, so per-block device measurements (latency,
energy) from HW-NAS-Bench attach to our blocks, and the blocks its keys name, as measurements to
fit a latency model to (:mod:`nas.hardware.fitting`).

Keys as in HW-NAS-Bench's FBNet tables, named by each block's input size:
``ConvNorm_H224_W224_Cin3_Cout16_kernel3_stride2_group1`` (stem, head),
``ConvBlock_H56_W56_Cin24_Cout24_exp6_kernel3_stride1_group1``, ``Skip_H56_W56_Cin24_Cout32_stride2``,
``AvgP_H7_W7_Cin1984_Cout1984_kernel7_stride1`` and ``FC_Cin1984_Cout1000``. A network's figure
is the sum of its blocks' figures, as in HW-NAS-Bench.

>>> from nas.space.zoo import fbnet
>>> block_keys(fbnet([0] * 22))[1]
'ConvBlock_H112_W112_Cin16_Cout16_exp1_kernel3_stride1_group1'
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from torch import nn

from nas.core.errors import UserError
from nas.cost.layers import module_layers
from nas.hardware.fitting import BlockMeasurement
from nas.space.arch import ArchSpec, stage_inputs
from nas.space.blocks import ConvBnAct, FBNetBlock, skip
from nas.space.kinds import block_kind, table

_FIELDS = re.compile(r"([A-Za-z]+?)(\d+)")


def block_keys(spec: ArchSpec) -> list[str]:
    """One HW-NAS-Bench key per block, in order; raise for blocks outside the FBNet space."""
    if spec.stem_pool or spec.head_chs is None:
        raise UserError(f"{spec.format()!r} is not an FBNet-space network (needs stem without pool and a head)")
    size = spec.resolution
    keys = [f"ConvNorm_H{size}_W{size}_Cin{spec.in_chs}_Cout{spec.stem_chs}_kernel{spec.stem_kernel}"
            f"_stride{spec.stem_stride}_group1"]
    size //= spec.stem_stride
    for stage, in_chs in zip(spec.stages, stage_inputs(spec)):
        kind = block_kind(stage.kind)
        for i in range(stage.repeats):
            stride, cin = (stage.stride, in_chs) if i == 0 else (1, stage.out_chs)
            key = kind.hwnasbench_key(stage, f"H{size}_W{size}_Cin{cin}_Cout{stage.out_chs}", stride)
            if key is None:
                allowed = [k for k, entry in table().items() if entry.in_hwnasbench()]
                raise UserError(f"block {stage.format()!r} is not in the FBNet space; allowed: {', '.join(allowed)}")
            keys.append(key)
            size //= stride
    last = spec.stages[-1].out_chs
    keys += [f"ConvNorm_H{size}_W{size}_Cin{last}_Cout{spec.head_chs}_kernel1_stride1_group1",
             f"AvgP_H{size}_W{size}_Cin{spec.head_chs}_Cout{spec.head_chs}_kernel{size}_stride1",
             f"FC_Cin{spec.head_chs}_Cout{spec.num_classes}"]
    return keys


def load_table(path: str | Path) -> dict[str, dict[str, float]]:
    """HW-NAS-Bench's per-block JSON: ``{"<device>_<metric>": {key: value}}``."""
    try:
        with open(path) as f:
            table = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON table ({type(exc).__name__}); allowed: "
                        f'{{"<device>_latency": {{"<block key>": ms}}}}') from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise UserError(f'{path}: expected {{"<metric>": {{"<block key>": value}}}}')
    return table


def network_figure(spec: ArchSpec, table: dict[str, dict[str, float]], metric: str) -> float:
    """Sum of the blocks' figures for ``metric`` (e.g. ``edgegpu_latency``); missing blocks are
    named in the error, never counted as zero."""
    if metric not in table:
        raise UserError(f"metric {metric!r} not in the table; allowed: {', '.join(sorted(table))}")
    values = table[metric]
    keys = block_keys(spec)
    missing = [k for k in keys if k not in values]
    if missing:
        raise UserError(f"{len(missing)} block(s) have no {metric} figure, first {missing[0]!r}")
    return sum(values[k] for k in keys)


def _fields(key: str) -> dict[str, int]:
    return {name: int(value) for name, value in _FIELDS.findall(key.split("_", 1)[1].replace("_", ""))}


def block_module(key: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The module and input shape a HW-NAS-Bench key names (ConvBlock, Skip, ConvNorm, AvgP, FC)."""
    kind, f = key.split("_", 1)[0], _fields(key)
    if kind == "ConvBlock":
        return (FBNetBlock(f["Cin"], f["Cout"], k=f["kernel"], stride=f["stride"], exp_ratio=f["exp"],
                           groups=f["group"]), (1, f["Cin"], f["H"], f["W"]))
    if kind == "Skip":
        return skip(f["Cin"], f["Cout"], stride=f["stride"]), (1, f["Cin"], f["H"], f["W"])
    if kind == "ConvNorm":
        return (ConvBnAct(f["Cin"], f["Cout"], f["kernel"], stride=f["stride"], groups=f["group"]),
                (1, f["Cin"], f["H"], f["W"]))
    if kind == "AvgP":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1)), (1, f["Cin"], f["H"], f["W"])  # a module op, not F.*
    if kind == "FC":
        return nn.Sequential(nn.Linear(f["Cin"], f["Cout"])), (1, f["Cin"])
    raise UserError(f"unknown HW-NAS-Bench block {key!r}; allowed kinds: ConvBlock, Skip, ConvNorm, AvgP, FC")


def hwnasbench_measurements(table: dict[str, dict[str, float]], metric: str) -> tuple[list[BlockMeasurement], int]:
    """Blocks of ``metric`` with a positive figure and at least one executed op; returns them and
    how many were left out (zeros, as the FPGA table has for non-conv blocks, and identity skips)."""
    if metric not in table:
        raise UserError(f"metric {metric!r} not in the table; allowed: {', '.join(sorted(table))}")
    kept, left_out = [], 0
    for key, ms in sorted(table[metric].items()):
        module, shape = block_module(key)
        layers = module_layers(module, shape)
        if ms > 0 and layers:
            kept.append(BlockMeasurement(key, layers, float(ms)))
        else:
            left_out += 1
    return kept, left_out
