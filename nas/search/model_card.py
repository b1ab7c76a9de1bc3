"""``README.md`` of a model folder: the commands that take its files onto the target first
(:mod:`nas.search.deploy_steps`), then what each file is, its figures (measured on that file, by the
runtime named), and the deploy contract.

>>> card = model_card(CandidateResult(arch="a", seed=0, profile="jetson-nano", profile_version="3",
...                                   precision="fp32"), {"onnx": {"path": "trials/0001/model.onnx", "bytes": 10,
...                   "runtime": "onnxruntime", "test_accuracy": 0.9}}, input_shape=(1, 1, 20, 20))
>>> "trtexec --onnx=model.onnx --fp16" in card and card.index("## Deploy on jetson-nano") < card.index("| file")
True
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.deploy import tflite
from nas.deploy.artifacts import ARTIFACT_KINDS
from nas.deploy.contract import CONTRACT_KEY, parse_contract
from nas.deploy.export import read_metadata as read_onnx_metadata
from nas.search.deploy_steps import deploy_section, target_of
from nas.search.record import CandidateResult

log = logging.getLogger(__name__)


def _fmt(value: Any, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{unit}"


def card_contract(folder: Path, profile: str) -> dict[str, Any] | None:
    """The deploy contract of the file the target's steps use (a .tflite file for the Pi, else
    model.onnx), read from the file in ``folder``; None when there is none to read."""
    names = (["model_int8.tflite", "model_fp32.tflite"] if target_of(profile) == "pi" else []) + ["model.onnx"]
    for name in names:
        path = folder / name
        if not path.is_file() or (path.suffix == ".tflite" and not tflite.available()):
            continue
        try:
            metadata = read_onnx_metadata(path) if path.suffix == ".onnx" else tflite.read_metadata(path)
            return parse_contract(metadata, str(path))
        except Exception as exc:  # noqa: BLE001 - the card then goes without the snippet, saying why
            log.warning("%s: no deploy contract read (%s: %s)", path, type(exc).__name__, exc)
    return None


def model_card(result: CandidateResult, files: Mapping[str, Mapping[str, Any]], *,
               input_shape: tuple[int, ...], title: str = "", contract: Mapping[str, Any] | None = None) -> str:
    """The README of a model folder holding ``files`` (kind -> figures, as in the trial record):
    the target's deployment steps first (with ``contract``, the exact preprocessing), then the
    figures of every file, then the deploy contract."""
    rows = []
    for kind, f in files.items():
        name = ARTIFACT_KINDS[kind].filename if kind in ARTIFACT_KINDS else Path(str(f.get("path", kind))).name
        rows.append(f"| `{name}` | {f.get('runtime', '-')} | {_fmt(f.get('test_accuracy'), 100, 2, '%')} | "
                    f"{f.get('bytes', '-')} | {_fmt(f.get('host_latency_ms'), 1, 4)} |")
    band = result.latency_band
    interval = f" (80% band {band[0]:.4g}-{band[1]:.4g} ms: the profile's held-out error)" if band else ""
    predicted = (f"{result.latency_ms:.4g} ms{interval}, {result.latency_kind} ({result.latency_how})"
                 if result.latency_ms is not None else "-")
    lines = [f"# {title or 'hwnas model'}", "", f"Target profile {result.profile}@{result.profile_version}; "
             f"target latency {predicted}", "",
             *deploy_section(result.profile, files, input_shape, contract),
             "## Figures", "", f"Architecture: `{result.arch}`", "",
             f"Recipe: `{result.recipe or 'none'}`; precision {result.precision}", "",
             "| file | accuracy measured by | test accuracy | bytes | host latency ms (that runtime, batch 1) |",
             "|---|---|---|---|---|", *rows, "",
             "Every accuracy above was measured by running that file in the runtime named, on the test split.", "",
             "## Feeding the model", "",
             f"Each file carries the deploy contract as JSON metadata `{CONTRACT_KEY}` (source size, resize method "
             "and antialiasing, mean, std, channel order, layout, dtype, input and output quantization). "
             "`hwnas predict FILE IMAGE` is the reference implementation of it."]
    return "\n".join(lines).rstrip() + "\n"
