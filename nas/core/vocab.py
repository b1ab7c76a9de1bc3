"""The shared vocabularies of hwnas, written down once: every module that checks or offers one of
these imports it from here.

>>> BYTES_PER_ELEMENT["int8"], "fp16" in PRECISIONS
(1, True)
"""
from __future__ import annotations

# Numeric precisions a network is exported, costed and priced at, and the bytes of one element.
PRECISIONS = ("fp32", "fp16", "int8")
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}

# Block kinds are not listed here: each is an entry of the table in nas.space.kinds.

# Structured pruning's importance criteria (compress.importance), onnxruntime quantization modes and
# static int8 scale forms (compress.quantize: pof2, power-of-two scales, is Vitis AI's DPU's).
PRUNE_CRITERIA = ("l1", "taylor", "bn")
QUANTIZE_MODES = ("static", "dynamic", "fp16")
QUANTIZE_SCALES = ("float", "pof2")

# Training augmentations of final.augment, and how a supernet search's finals start by default
# (from random weights, or fine-tuned from their inherited ones; benchmarks/results/supernet.md).
AUGMENTS = ("crop", "flip")
SUPERNET_FINAL_INIT = "scratch"

# What a search can optimise, and in which direction (Optuna's study directions).
OBJECTIVES = {"accuracy": "maximize", "latency_ms": "minimize", "macs": "minimize",
              "parameters": "minimize", "peak_memory_mb": "minimize"}
# Figures a search can put a budget on.
BUDGET_KEYS = ("latency_ms", "peak_memory_mb", "macs")

# Files a trial can be exported as (nas.deploy.artifacts): the trial's ONNX (fp32, or the int8 QDQ
# file of a static int8 recipe), TFLite fp32, full-integer int8 TFLite.
ARTIFACT_NAMES = ("onnx", "tflite-fp32", "tflite-int8")

# How a latency figure was obtained: measured on this host, or predicted by a profile's model.
LATENCY_KINDS = ("measured", "predicted")
