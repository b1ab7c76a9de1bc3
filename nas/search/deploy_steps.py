"""The steps that take a model folder's files onto its target, for the model README: the target's
own steps first (Raspberry Pi: the LiteRT interpreter with the exact preprocessing; Jetson:
trtexec; Zynq DPU: Vitis AI; Edge TPU: the compiler; CPU: onnxruntime), then the other files.

>>> target_of("raspberry-pi4"), target_of("edgetpu-devboard"), target_of("cpu")
('pi', 'edgetpu', 'cpu')
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.deploy.edgetpu import compiler_command

TARGETS = {"raspberry-pi": "pi", "jetson": "jetson", "zynq": "dpu", "edgetpu": "edgetpu"}
PI_THREADS = 4  # a Raspberry Pi 4 has four Cortex-A72 cores


def target_of(profile: str) -> str:
    """The family of deployment steps for a profile name (``cpu`` for a measured host)."""
    return next((family for prefix, family in TARGETS.items() if profile.startswith(prefix)), "cpu")


def litert_snippet(filename: str, contract: Mapping[str, Any], threads: int = PI_THREADS) -> str:
    """Python that runs ``filename`` in the LiteRT interpreter on an image file, preparing the
    image exactly as the deploy contract says (float pixels, PIL's antialiased bilinear resize,
    which equals the contract's reference, normalisation, NHWC, the file's input quantization)."""
    src = contract["source"]
    shape = contract["input"]["shape"]
    height, width = (shape[1], shape[2]) if contract["input"]["layout"] == "NHWC" else (shape[2], shape[3])
    mode = "L" if src["channels"] == 1 else "RGB"
    return "\n".join([
        "import numpy as np",
        "from PIL import Image",
        "from ai_edge_litert.interpreter import Interpreter",
        "",
        f'interpreter = Interpreter(model_path="{filename}", num_threads={threads})',
        "interpreter.allocate_tensors()",
        "inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]",
        f'pixels = np.asarray(Image.open(IMAGE).convert("{mode}"), np.float32) * {contract["scale"]!r}',
        "pixels = pixels[..., None] if pixels.ndim == 2 else pixels",
        f"x = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c]), mode=\"F\")"
        f".resize(({width}, {height}), Image.BILINEAR)) for c in range(pixels.shape[-1])], -1)",
        f"x = ((x - np.array({list(contract['mean'])!r}, np.float32)) / np.array({list(contract['std'])!r}, "
        "np.float32))[None]",
        *(["x = x.transpose(0, 3, 1, 2)  # the file takes NCHW"] if contract["input"]["layout"] == "NCHW" else []),
        'scale, zero_point = inp["quantization"]',
        "if scale:  # an int8 file takes integers",
        '    info = np.iinfo(inp["dtype"])',
        '    x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)',
        'interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))',
        "interpreter.invoke()",
        'logits = interpreter.get_tensor(out["index"]).astype(np.float32)',
        'scale, zero_point = out["quantization"]',
        "logits = (logits - zero_point) * scale if scale else logits",
        "print(int(logits.argmax()))  # the class index; names in the file's hwnas.classes metadata",
    ])


def _pi(files: Mapping[str, Any], contract: Mapping[str, Any] | None) -> list[str]:
    name = next((f for kind, f in (("tflite-int8", "model_int8.tflite"), ("tflite-fp32", "model_fp32.tflite"))
                 if kind in files), None)
    if name is None:
        return ["No .tflite file in this folder: `hwnas export RUN --trial N --format tflite --precision int8` "
                "writes one.", ""]
    if contract is None:
        lines = [f"Copy `{name}` to the Pi, `pip install ai-edge-litert`, and run it with LiteRT's `Interpreter` "
                 f"({PI_THREADS} threads), preparing each image as the file's `hwnas.preprocess` contract says "
                 "(`hwnas predict` is the reference).", ""]
    else:
        lines = [f"Copy `{name}` to the Pi, `pip install ai-edge-litert numpy pillow`, then (IMAGE is an image path; "
                 f"{PI_THREADS} threads, one per core):", "", "```python", 'IMAGE = "image.png"',
                 litert_snippet(name, contract), "```", ""]
    lines += [f"Timing on the Pi: TFLite's `benchmark_model --graph={name} --num_threads={PI_THREADS}`.", ""]
    return lines


def _jetson(shape: str) -> list[str]:
    return ["On the Jetson Nano, build a TensorRT engine from `model.onnx` on the device (fp16, batch 1), then "
            "time it:", "", f"    trtexec --onnx=model.onnx --fp16 --shapes=input:{shape} --saveEngine=model_fp16.plan",
            "    trtexec --loadEngine=model_fp16.plan --iterations=200", ""]


def _dpu() -> list[str]:
    return ["On the Zynq DPU: `model.onnx` is the int8 QDQ file of the search's static int8 recipe (onnxruntime's "
            "quantizer). Vitis AI's DPU takes power-of-two scales: quantize the fp32 network with "
            "`vai_q_onnx.quantize_static(..., calibrate_method=PowerOfTwoMethod.MinMSE)`, compile with "
            "`vai_c_xir -x model.xmodel -a /opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102/arch.json -o out -n net`, "
            "and run `out/net.xmodel` with the Vitis AI Runtime on the board.", ""]


def _edgetpu(files: Mapping[str, Any]) -> list[str]:
    if "tflite-int8" not in files:
        return ["No int8 .tflite file in this folder: the Edge TPU runs only full-integer files.", ""]
    summary = files["tflite-int8"].get("edgetpu_summary", "not checked")
    return ["Compile `model_int8.tflite` for the Edge TPU on an x86-64 Linux machine with the Coral compiler "
            "(not run here), then run `model_int8_edgetpu.tflite` with the Edge TPU delegate "
            "(`pycoral` or LiteRT's `load_delegate('libedgetpu.so.1')`):", "",
            f"    {compiler_command('model_int8.tflite', '.')}", "",
            f"hwnas checked the compiler's documented op and dtype rules: {summary}", ""]


def _cpu() -> list[str]:
    return ["On a CPU, run `model.onnx` with onnxruntime; `hwnas predict model.onnx image.png` applies the deploy "
            "contract and runs it.", ""]


def deploy_section(profile: str, files: Mapping[str, Any], input_shape: tuple[int, ...],
                   contract: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines: the target's steps, then a line on the folder's other files."""
    target = target_of(profile)
    shape = "x".join(str(d) for d in input_shape)
    steps = {"pi": lambda: _pi(files, contract), "jetson": lambda: _jetson(shape), "dpu": _dpu,
             "edgetpu": lambda: _edgetpu(files), "cpu": _cpu}[target]()
    lines = [f"## Deploy on {profile}", "", *steps]
    others = [k for k in files if not (target in ("pi", "edgetpu") and k.startswith("tflite"))
              and not (target in ("cpu", "jetson", "dpu") and k == "onnx")]
    if others:
        lines += [f"Also here: {', '.join(f'`{k}`' for k in others)} (the table above gives each one's figures; "
                  "`hwnas predict FILE IMAGE` runs any of them on this machine).", ""]
    return lines
