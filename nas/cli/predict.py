"""``hwnas predict MODEL IMAGE...``: the reference consumer of the deploy contract. It reads only
the file (its ``hwnas.preprocess`` and ``hwnas.classes`` metadata), prepares each image exactly as
the contract says, runs the file in its runtime (onnxruntime for .onnx, LiteRT for .tflite) and
prints the top classes."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nas.core.errors import UserError, plain
from nas.deploy import tflite
from nas.deploy.contract import apply_contract, parse_contract, read_output
from nas.deploy.export import read_metadata as onnx_metadata
from nas.deploy.host_latency import session

SUFFIXES = (".onnx", ".tflite")


def _image(path: Path, channel_order: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L" if channel_order == "gray" else "RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not a readable image ({type(exc).__name__}: {plain(str(exc))[:100]}); allowed: "
                        "PNG, JPEG or any format Pillow reads, within its pixel limit") from None


def _runner(model: Path) -> tuple[dict[str, str], Callable[[np.ndarray], np.ndarray]]:
    if model.suffix == ".onnx":
        sess = session(model, threads=1)
        name = sess.get_inputs()[0].name

        def run_onnx(x: np.ndarray) -> np.ndarray:
            return np.asarray(sess.run(None, {name: x})[0])

        return onnx_metadata(model), run_onnx
    tflite.require()
    it = tflite.interpreter(model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        it.set_tensor(inp["index"], x)
        it.invoke()
        return np.asarray(it.get_tensor(out["index"]))

    return tflite.read_metadata(model), run


def cmd_predict(args: argparse.Namespace) -> int:
    model = Path(args.model)
    if model.suffix not in SUFFIXES or not model.is_file():
        raise UserError(f"{model}: not a model file; allowed: an exported .onnx or .tflite file")
    try:
        metadata, run = _runner(model)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime and LiteRT raise their own kinds for a foreign file
        raise UserError(f"{model}: not a model file {'onnxruntime' if model.suffix == '.onnx' else 'LiteRT'} can "
                        f"load ({type(exc).__name__}: {plain(str(exc))[:120]}); allowed: a file hwnas exported") from None
    try:
        contract = parse_contract(metadata, str(model))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    classes = json.loads(metadata.get("hwnas.classes", "[]"))
    src = contract["source"]
    for name in args.images:
        path = Path(name)
        image = _image(path, src["channel_order"])
        note = ""
        if image.shape[:2] != (src["height"], src["width"]):
            note = (f" (image is {image.shape[1]}x{image.shape[0]}, the model was trained on "
                    f"{src['width']}x{src['height']}: resized with the contract's filter)")
        logits = read_output(run(apply_contract(image, contract)), contract)[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:args.top]
        shown = ", ".join(f"{classes[i] if i < len(classes) else i} {100 * probs[i]:.1f}%" for i in top)
        print(f"{path}: {shown}{note}")
    return 0
