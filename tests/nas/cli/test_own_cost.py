"""``hwnas cost`` on a user's own model: an ONNX file or FILE.py:CALLABLE, with weights that never run code."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.deploy.own_model import module_to_onnx
from nas.hardware.profiles import bundled_profiles
from tests import own_models


@pytest.fixture()
def nets_py(tmp_path: Path) -> Path:
    """The test models as a user's file, beside a helper module it imports."""
    shutil.copy(own_models.__file__, tmp_path / "nets.py")
    (tmp_path / "user_entry.py").write_text("from nets import resnet\n\ndef make():\n    return resnet()\n")
    return tmp_path


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_onnx_file_on_one_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vit.onnx"
    path.write_bytes(module_to_onnx(own_models.vit(), (1, 3, 32, 32)))
    assert main(["cost", str(path), "--profile", "raspberry-pi4", "--json", "--layers"]) == 0
    out = _json(capsys)
    assert out["latency_kind"] == "predicted" and isinstance(out["latency_ms"], float) and out["latency_ms"] > 0
    assert out["macs"] == 631104 and out["input_shape"] == [1, 3, 32, 32]
    assert "priced by the terms of" in str(out["latency_how"])  # matmul, norm, softmax: said, not hidden
    assert {"matmul", "softmax"} <= {layer["kind"] for layer in out["layers"]}  # type: ignore[attr-defined, index]


def test_callable_with_weights_on_every_profile(nets_py: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = own_models.resnet()
    torch.save({"state_dict": net.state_dict()}, nets_py / "w.pt")
    ref = f"{nets_py / 'user_entry.py'}:make"
    assert main(["cost", ref, "--weights", str(nets_py / "w.pt"), "--input-shape", "3,32,32", "--json"]) == 0
    prices = _json(capsys)["prices"]
    assert isinstance(prices, list) and len(prices) == len(bundled_profiles())
    for p in prices:  # a latency, or the reason there is none
        assert p["latency_ms"] is not None or p["latency_how"].startswith("not predicted")
    assert sum(p["latency_ms"] is not None for p in prices) == len(prices)  # a ResNet runs everywhere


def test_a_pickle_that_runs_code_is_refused_without_running_it(nets_py: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"stem.0.weight": Payload()}, f)
    code = main(["cost", f"{nets_py / 'nets.py'}:resnet", "--weights", str(tmp_path / "evil.pt"),
                 "--input-shape", "3,32,32"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert err.count("\n") == 1 and "not a state dict readable without running code" in err


@pytest.mark.parametrize("args, message", [
    (["nets.py:resnet"], "give the input shape with --input-shape"),
    (["nets.py:nothing", "--input-shape", "3,32,32"], "has no callable 'nothing'"),
    (["nets.py:resnet", "--input-shape", "3,32"], "allowed: C,H,W"),
    (["missing.onnx"], "missing.onnx does not exist"),
    (["nets.py:resnet", "--input-shape", "3,32,32", "--profile", "nope"], "hardware profile 'nope' not found"),
])
def test_bad_model_input_is_one_line(nets_py: Path, args: list[str], message: str,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(nets_py)
    assert main(["cost", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
