"""The one place hwnas loads the optional LiteRT extra (``hwnas[tflite]``: litert-torch,
ai-edge-litert, ai-edge-quantizer, and flatbuffers that comes with them).

They are loaded on first use, by name, never when hwnas starts: importing litert-torch takes
seconds (JAX, TensorFlow's logging set-up) and every command but a TFLite export would pay for it;
and without the extra installed the rest of hwnas must still import. Everything else in ``nas/``
imports at module top (tests/test_code_shape.py holds that).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from types import ModuleType

EXTRA_MODULES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")


def available() -> bool:
    """Whether the optional LiteRT packages are installed."""
    return all(importlib.util.find_spec(m) is not None for m in EXTRA_MODULES)


def load(name: str) -> ModuleType:
    """The module ``name`` of the extra, imported quietly (TensorFlow's C++ logs, torchao's optional
    CUDA kernels and a torch deprecation note are import-time noise, not hwnas output)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    return importlib.import_module(name)
