"""What ``hwnas compress`` adds for the run's target: the target's file kinds (TFLite fp32 or int8
beside the ONNX file, made from the compressed network by the one int8 path), and the target's
latency before and after (predicted by its profile where the target is a device), beside the
host's measurement that :func:`compress.report.compress` makes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compress.recipe import Recipe, tflite_int8_options
from nas.core.config import SearchConfig
from nas.core.files import write_atomic
from nas.core.progress import note
from nas.data.splits import Splits
from nas.deploy.artifacts import not_written, tflite_file
from nas.deploy.export import DeployInfo
from nas.hardware.pricing import predict_on_profiles
from nas.hardware.profiles import HardwareProfile
from nas.search.evaluate import artifact_kinds, artifact_precision
from nas.space.arch import ArchSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetFigures:
    """The target's files written and its latency before and after compression."""

    files: dict[str, dict[str, Any]]  # kind -> the file's measured figures (MeasuredFile.to_json)
    unwritten: list[str]  # one line per file a converter could not make
    latency: dict[str, Any] | None  # predicted before/after on the target's profile, None for the host

    def lines(self) -> list[str]:
        out = [f"  {f['path']}: test accuracy {100 * f['test_accuracy']:.2f}% measured on the file by {f['runtime']}"
               for f in self.files.values()]
        out += [f"  {line}" for line in self.unwritten]
        if self.latency is not None:
            lat = self.latency
            out.append(f"  target latency {lat['before_ms']:.4g} -> {lat['after_ms']:.4g} ms, predicted by "
                       f"{lat['profile']} at {lat['precision']}" + (" (EXTRAPOLATED)" if lat["caveat"] else ""))
        return out


def _predicted(spec: ArchSpec, model: nn.Module, profile: HardwareProfile, precision: str) -> tuple[float, str | None]:
    mine = predict_on_profiles(spec, model, [profile], precision=precision, target=profile)[profile.name]
    if mine.ms is None:
        raise ValueError(mine.error or f"profile {profile.tag} cannot price this network")
    return mine.ms, mine.caveat


def target_figures(cfg: SearchConfig, profile: HardwareProfile, spec: ArchSpec, before: nn.Module,
                   after: nn.Module, recipe: Recipe, splits: Splits, out: Path, *, seed: int) -> TargetFigures:
    """Write the target's TFLite kinds of ``after`` into ``out`` and price both networks on the
    target when it is predicted (``before`` at the run's precision, ``after`` at the recipe's)."""
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    out.mkdir(parents=True, exist_ok=True)
    files, unwritten = {}, []
    tflite_kinds = [k for k in artifact_kinds(cfg, profile) if k.format == "tflite"]
    wanted = [k for k in tflite_kinds if (k.precision == "int8") == (recipe.precision == "int8")]
    if tflite_kinds and not wanted:
        unwritten.append(f"{tflite_kinds[0].filename} not written: {profile.name} runs "
                         f"{', '.join(k.name for k in tflite_kinds)} and the recipe makes {recipe.precision}")
    for kind in wanted:
        note("  exporting and measuring %s", kind.filename)
        try:
            data, measured = tflite_file(after, info, kind, splits, resolution=spec.resolution, seed=seed,
                                         rel_path=str(out / kind.filename), int8=tflite_int8_options(recipe))
        except Exception as exc:  # noqa: BLE001 - a converter's failure costs that file only
            unwritten.append(not_written(kind, exc))
            log.warning("%s", unwritten[-1])
            continue
        write_atomic(out / kind.filename, data)
        files[kind.name] = measured.to_json()
    latency = None
    if profile.kind == "predicted":
        before_ms, _ = _predicted(spec, before, profile, artifact_precision(cfg, profile))
        after_ms, caveat = _predicted(spec, after, profile, recipe.precision)
        latency = {"profile": profile.tag, "precision": recipe.precision, "before_ms": before_ms,
                   "after_ms": after_ms, "caveat": caveat, "how": profile.predicted_how()}
    return TargetFigures(files, unwritten, latency)
