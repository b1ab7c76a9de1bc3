"""``README.md`` of a model folder: what each file is, its figures (measured on that file, by the
runtime named), the deploy contract, and the commands that take the file onto its device.

>>> card = model_card(CandidateResult(arch="a", seed=0, profile="jetson-nano", profile_version="3",
...                                   precision="fp32"), {"onnx": {"path": "trials/0001/model.onnx", "bytes": 10,
...                   "runtime": "onnxruntime", "test_accuracy": 0.9}}, input_shape=(1, 1, 20, 20))
>>> "trtexec --onnx=model.onnx --fp16" in card
True
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.deploy.artifacts import ARTIFACT_KINDS
from nas.deploy.contract import CONTRACT_KEY
from nas.deploy.edgetpu import compiler_command
from nas.search.record import CandidateResult


def _fmt(value: Any, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{unit}"


def _device_commands(result: CandidateResult, files: Mapping[str, Mapping[str, Any]],
                     input_shape: tuple[int, ...]) -> list[str]:
    lines = []
    shape = "x".join(str(d) for d in input_shape)
    if "onnx" in files and result.profile.startswith("jetson-nano"):
        lines += ["TensorRT engine on the Jetson Nano (fp16, batch 1), built on the device:", "",
                  f"    trtexec --onnx=model.onnx --fp16 --shapes=input:{shape} --saveEngine=model_fp16.plan", ""]
    if "onnx" in files and result.profile.startswith("zynq"):
        lines += ["Zynq DPU: `model.onnx` is the int8 QDQ file of the search's static int8 recipe (onnxruntime's "
                  "quantizer, float scales). Vitis AI's DPU takes power-of-two scales: quantize the fp32 network "
                  "with `vai_q_onnx.quantize_static(..., calibrate_method=PowerOfTwoMethod.MinMSE)`, then compile "
                  "with `vai_c_xir -x model.xmodel -a /opt/vitis_ai/compiler/arch/DPUCZDX8G/ZCU102/arch.json "
                  "-o out -n net`.", ""]
    if "tflite-int8" in files:
        info = files["tflite-int8"]
        lines += ["Edge TPU: compile the int8 file on an x86-64 Linux machine with the Coral compiler "
                  "(not run here; hwnas checked the documented op and dtype rules:", "",
                  f"    {info.get('edgetpu_summary', 'not checked')}", "",
                  "):", "", f"    {compiler_command('model_int8.tflite', '.')}", ""]
    if "onnx" in files and not result.profile.startswith(("jetson-nano", "zynq")):
        lines += ["CPU: run `model.onnx` with onnxruntime (`hwnas predict model.onnx image.png` applies the "
                  "contract and runs it).", ""]
    if any(k.startswith("tflite") for k in files):
        lines += ["Raspberry Pi / ARM CPUs: run the .tflite file with LiteRT (`pip install ai-edge-litert`; "
                  "`from ai_edge_litert.interpreter import Interpreter`) or TFLite's benchmark_model.", ""]
    return lines


def model_card(result: CandidateResult, files: Mapping[str, Mapping[str, Any]], *,
               input_shape: tuple[int, ...], title: str = "") -> str:
    """The README of a model folder holding ``files`` (kind -> figures, as in the trial record)."""
    rows = []
    for kind, f in files.items():
        name = ARTIFACT_KINDS[kind].filename if kind in ARTIFACT_KINDS else Path(str(f.get("path", kind))).name
        rows.append(f"| `{name}` | {f.get('runtime', '-')} | {_fmt(f.get('test_accuracy'), 100, 2, '%')} | "
                    f"{f.get('bytes', '-')} | {_fmt(f.get('host_latency_ms'), 1, 4)} |")
    predicted = (f"{result.latency_ms:.4g} ms, {result.latency_kind} ({result.latency_how})"
                 if result.latency_ms is not None else "-")
    lines = [f"# {title or 'hwnas model'}", "", f"Architecture: `{result.arch}`", "",
             f"Recipe: `{result.recipe or 'none'}`; precision {result.precision}; target profile "
             f"{result.profile}@{result.profile_version}", "",
             f"Target latency: {predicted}", "",
             "| file | accuracy measured by | test accuracy | bytes | host latency ms (that runtime, batch 1) |",
             "|---|---|---|---|---|", *rows, "",
             "Every accuracy above was measured by running that file in the runtime named, on the test split.", "",
             "## Feeding the model", "",
             f"Each file carries the deploy contract as JSON metadata `{CONTRACT_KEY}` (source size, resize method "
             "and antialiasing, mean, std, channel order, layout, dtype, input and output quantization). "
             "`hwnas predict FILE IMAGE` is the reference implementation of it.", "",
             "## On the device", "", *_device_commands(result, files, input_shape)]
    return "\n".join(lines).rstrip() + "\n"
