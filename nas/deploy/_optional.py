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
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

log = logging.getLogger(__name__)

EXTRA_MODULES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")
# TensorFlow (under LiteRT and AI Edge Quantizer) logs through C++, gRPC and glog: warnings and
# notes off, errors kept
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}


def available() -> bool:
    """Whether the optional LiteRT packages are installed."""
    return all(importlib.util.find_spec(m) is not None for m in EXTRA_MODULES)


@contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Run the block with the process's stderr (file descriptor 2, where TensorFlow's and LiteRT's
    C++ code writes "I0000 ... oneDNN", "INFO: Created TensorFlow Lite XNNPACK delegate" and
    absl's warnings) captured: logged at DEBUG (``hwnas -v`` shows it), or written back to stderr
    if the block raises, so nothing that explains a failure is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text and failed:
                sys.stderr.write(text + "\n")
            elif text:
                log.debug("native stderr: %s", text)


def load(name: str) -> ModuleType:
    """The module ``name`` of the extra, imported quietly (TensorFlow's C++ logs, torchao's optional
    CUDA kernels and a torch deprecation note are import-time noise, not hwnas output)."""
    for key, value in _QUIET_ENV.items():  # read by TensorFlow when it loads
        os.environ.setdefault(key, value)
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    with native_stderr_to_log():
        return importlib.import_module(name)
