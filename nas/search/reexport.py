"""``hwnas export --format F --precision P``: a trial or final re-exported as another kind of file
than its target's default, from its saved weights (with its compression recipe re-applied), and
measured on the new file by the runtime that runs it.

The new file goes into the model folder beside the others, its figures into that folder's
``metrics.json`` (``artifacts``) and ``README.md``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from compress.pipeline import apply_recipe
from compress.quantize import quantize
from compress.recipe import Recipe, parse_recipe, tflite_int8_options
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.data.splits import Splits, to_tensor
from nas.deploy.artifacts import ARTIFACT_KINDS, TFLITE_CALIBRATION_IMAGES, MeasuredFile, calibration_images, not_written, tflite_file
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import measure_latency
from nas.search.finals import final_config_of
from nas.search.int8_qat import final_qat_weights
from nas.search.model_card import card_contract, model_card
from nas.search.record import CandidateResult
from nas.space.arch import parse
from nas.space.builder import Net, build
from nas.train.weights import load_into

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8")
ONNX_INT8_FILENAME = "model_int8.onnx"


def _load_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.exists():
        raise UserError(f"{folder} has no metrics.json; allowed: a model folder written by hwnas search/export or "
                        "hwnas train (run hwnas export RUN --trial N first)")
    metrics: dict[str, Any] = json.loads(path.read_text())
    return metrics


def _rebuild(result: CandidateResult, run_dir: Path,
             splits: Splits) -> tuple[Net, bytes | None, DeployInfo, Recipe | None]:
    """The trial's float network (compressed by its recipe, if any), the recipe's ONNX file and
    the recipe."""
    spec = parse(result.arch)
    weights = run_dir / str(result.weights_path)
    if not weights.exists():
        raise UserError(f"{weights} is missing: the trial's trained weights are needed to re-export it")
    model = build(spec)
    load_into(model, weights, "the weights.pt of this trial")
    model.eval()
    info = DeployInfo.for_arch(spec, splits.preprocess, splits.classes)
    if not result.recipe or result.recipe == "none":
        return model, None, info, None
    recipe = parse_recipe(json.loads(result.recipe), where="the trial's recipe")
    onnx_bytes, compressed, _ = apply_recipe(model, spec, recipe, splits, seed=result.seed)
    return compressed, onnx_bytes if recipe.quantize is not None else None, info, recipe


def reexport(folder: Path, *, run_dir: Path, fmt: str, precision: str, splits: Splits) -> MeasuredFile:
    """Write ``fmt``/``precision`` of the model in ``folder`` beside its files and measure it."""
    if fmt not in FORMATS or precision not in PRECISIONS:
        raise UserError(f"--format {fmt} --precision {precision} not allowed; allowed: --format "
                        f"{'|'.join(FORMATS)} with --precision {'|'.join(PRECISIONS)}")
    metrics = _load_metrics(folder)
    result = CandidateResult.from_attrs(metrics)
    model, recipe_onnx, info, recipe = _rebuild(result, run_dir, splits)
    spec = parse(result.arch)
    rel = folder.relative_to(run_dir)
    if fmt == "tflite":
        kind = ARTIFACT_KINDS[f"tflite-{precision}"]
        try:
            qat = final_qat_weights(model, final_config_of(metrics), recipe, splits, resolution=spec.resolution,
                                    seed=result.seed) if precision == "int8" else None
            data, measured = tflite_file(model, info, kind, splits, resolution=spec.resolution, seed=result.seed,
                                         rel_path=str(rel / kind.filename), int8=tflite_int8_options(recipe), qat=qat)
        except Exception as exc:  # noqa: BLE001 - converters raise many kinds; the user gets one line
            raise UserError(not_written(kind, exc) + " (the folder's other files are unchanged)") from None
        name = kind.filename
    else:
        name = "model.onnx" if precision == "fp32" else ONNX_INT8_FILENAME
        data, measured = _onnx_file(model, info, spec.resolution, splits, precision=precision, seed=result.seed,
                                    recipe_onnx=recipe_onnx, rel_path=str(rel / name))
    write_atomic(folder / name, data)
    key = measured.kind if fmt == "tflite" else ("onnx" if precision == "fp32" else "onnx-int8")
    result = replace(result, artifacts={**result.artifacts, key: measured.to_json()})
    metrics.update(result.to_attrs())  # the record spells its keys; the file's other entries stay
    write_atomic(folder / "metrics.json", (json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n").encode())
    _rewrite_card(folder, result)
    return measured


def _onnx_file(model: Net, info: DeployInfo, resolution: int, splits: Splits, *, precision: str, seed: int,
               recipe_onnx: bytes | None, rel_path: str) -> tuple[bytes, MeasuredFile]:
    """fp32 ONNX, or int8: the recipe's own quantized file when it has one, else static int8."""
    if precision == "int8" and recipe_onnx is not None:
        data, how = recipe_onnx, "the trial's recipe (onnxruntime static int8)"
    elif precision == "int8":
        calibration = to_tensor(calibration_images(splits, TFLITE_CALIBRATION_IMAGES, seed), splits.preprocess,
                                resolution).numpy()
        data = quantize(to_onnx(model, info), "static", calibration_inputs=calibration)
        how = (f"onnxruntime static int8 QDQ, per-channel weights, min-max calibration on {len(calibration)} "
               "training images")
    else:
        data, how = to_onnx(model, info), "torch.onnx (TorchScript exporter)"
    accuracy = {n: onnx_accuracy(data, x, y, preprocess=splits.preprocess, resolution=resolution)
                for n, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test))}
    latency = measure_latency(data, info.input_shape, threads=1, repeats=200)
    return data, MeasuredFile(f"onnx-{precision}", rel_path, len(data), latency.runtime, accuracy["val"],
                              accuracy["test"], latency.median_ms, latency.p90_ms, latency.describe(), how)


def _rewrite_card(folder: Path, result: CandidateResult) -> None:
    spec = parse(result.arch)
    card = model_card(result, result.artifacts, input_shape=(1, spec.in_chs, spec.resolution, spec.resolution),
                      title=str(folder), contract=card_contract(folder, result.profile))
    write_atomic(folder / "README.md", card.encode())
