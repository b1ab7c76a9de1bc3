"""A user's own model, from outside the grammar: an ONNX file, or a PyTorch module made by a
callable in the user's Python file (``FILE.py:CALLABLE``) with optional weights.

``FILE.py:CALLABLE`` imports and runs the user's file, as ``python FILE.py`` would: only give it
code you trust. Weights are a state dict read with ``torch.load(weights_only=True)``, which
reads tensors and plain containers only and never runs code from the file.

>>> is_model_ref("model.onnx"), is_model_ref("nets.py:resnet"), is_model_ref("in_c1_r8-stem_k3_s1_c8")
(True, True, False)
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from nas.core.errors import UserError
from nas.cost.graph import fixed_input
from nas.deploy.export import OPSET


@dataclass(frozen=True)
class OwnModel:
    """A model to price or compress: its fp32 ONNX graph, and the module where it came from PyTorch."""

    name: str  # the reference it was loaded from (a path, or FILE.py:CALLABLE)
    input_shape: tuple[int, ...]  # (1, C, H, W)
    onnx_bytes: bytes
    module: nn.Module | None = None
    params: int | None = None  # the module's parameters (BatchNorm included); None for an ONNX file

    @property
    def source(self) -> str:
        return "ONNX file" if self.module is None else "PyTorch module (the user's code)"


def is_model_ref(text: str) -> bool:
    """Whether ``text`` names a model file rather than an architecture string."""
    return text.endswith(".onnx") or ".py:" in text


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``C,H,W`` (as ``--input-shape`` takes it) as a tuple; None for None."""
    if text is None:
        return None
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise UserError(f"--input-shape {text!r} not allowed; allowed: C,H,W as three positive integers, e.g. 3,32,32")
    return dims


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def module_from_callable(ref: str) -> nn.Module:
    """Import ``FILE.py`` (its folder on ``sys.path`` while it loads) and call ``CALLABLE()``."""
    file, _, attr = ref.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise UserError(f"{file} does not exist; allowed: FILE.py:CALLABLE naming a Python file")
    spec = importlib.util.spec_from_file_location(f"hwnas_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"{file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    with _on_path(path.resolve().parent):
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code: report what it raised in one line
            raise UserError(f"importing {file} failed: {type(exc).__name__}: {exc}") from exc
        made = getattr(module, attr, None)
        if not callable(made):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise UserError(f"{file} has no callable {attr!r}; callables there: {', '.join(names[:20])}")
        try:
            net = made()
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{ref}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise UserError(f"{ref}() returned {type(net).__name__}; allowed: a torch.nn.Module")
    return net


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a refused pickle or a broken file: one line
        raise UserError(f"--weights {path}: not a state dict readable without running code ({str(exc).splitlines()[0]})"
                        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"--weights {path}: allowed: a state dict (names to tensors), alone or under 'state_dict'")
    return data


def load_weights(net: nn.Module, path: Path) -> None:
    """Load a state dict file into ``net``, refusing missing or unexpected names in one line."""
    state = _state_dict(path)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"--weights {path} does not fit the model: {len(missing)} missing "
                        f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})")


def module_to_onnx(net: nn.Module, input_shape: tuple[int, ...], metadata: dict[str, str] | None = None) -> bytes:
    """fp32 ONNX of any module in eval mode (BatchNorm folded by the exporter), batch axis dynamic."""
    net = copy.deepcopy(net).cpu().eval()
    buffer = io.BytesIO()
    try:
        # not under no_grad: nn.MultiheadAttention's inference fast path (one fused op) has no ONNX export
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (see nas.deploy.export)
            torch.onnx.export(net, (torch.zeros(input_shape),), buffer,  # type: ignore[arg-type]
                              dynamo=False, opset_version=OPSET, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as exc:  # noqa: BLE001 - the user's module: name what the exporter refused
        raise UserError(f"the model cannot be exported to ONNX at input {list(input_shape)}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    if metadata:
        onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def from_module(net: nn.Module, input_shape: tuple[int, ...], name: str = "model") -> OwnModel:
    """An :class:`OwnModel` of a module already in memory (the Python API's entry)."""
    shape = (1, *input_shape) if len(input_shape) == 3 else tuple(input_shape)
    return OwnModel(name, shape, module_to_onnx(net, shape), net.eval(), sum(p.numel() for p in net.parameters()))


def load_own_model(ref: str, *, weights: Path | None = None, input_shape: tuple[int, ...] | None = None) -> OwnModel:
    """The model ``ref`` names: ``FILE.onnx`` or ``FILE.py:CALLABLE`` (see the module docstring)."""
    if ref.endswith(".onnx"):
        if weights is not None:
            raise UserError("--weights applies to FILE.py:CALLABLE models; an ONNX file holds its own weights")
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"{ref} does not exist; allowed: an ONNX file or FILE.py:CALLABLE")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - not an ONNX protobuf
            raise UserError(f"{ref} is not a readable ONNX file ({type(exc).__name__})") from exc
        shape = onnx_input_shape(proto, input_shape)
        return OwnModel(ref, shape, proto.SerializeToString())
    net = module_from_callable(ref)
    if weights is not None:
        load_weights(net, weights)
    if input_shape is None:
        raise UserError(f"{ref}: give the input shape with --input-shape C,H,W (a PyTorch module does not state it)")
    return from_module(net, input_shape, ref)


def onnx_input_shape(proto: onnx.ModelProto, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """(1, C, H, W) of an ONNX file's one image input: its own dims, or ``input_shape`` where given
    (the same rules the layer table fixes the graph by; ``proto`` is left unchanged)."""
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    return fixed_input(work, input_shape)[1]
