"""LiteRT export, its metadata and deploy contract, the Edge TPU readiness check, and the
reference predict: each checked on converted files run by the LiteRT interpreter."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.core.errors import UserError
from nas.data.splits import Preprocess, Splits, to_tensor
from nas.deploy.contract import CONTRACT_KEY, apply_contract, parse_contract, read_output
from nas.deploy.export import DeployInfo, to_onnx
from nas.deploy.host_latency import session
from nas.space.arch import parse
from nas.space.builder import build

tflite = pytest.importorskip("nas.deploy.tflite")
if not tflite.available():
    pytest.skip("needs the tflite extra (LiteRT)", allow_module_level=True)
from nas.deploy import artifacts  # noqa: E402  (needs the extra)
from nas.deploy.artifacts import ARTIFACT_KINDS, tflite_file  # noqa: E402
from nas.deploy.edgetpu import check_edgetpu, compiler_command  # noqa: E402
from nas.deploy.tflite_int8 import Int8Options, QatWeights  # noqa: E402
from nas.search.deploy_steps import litert_snippet  # noqa: E402

IR = "in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16-ir_r1_k5_s1_e3_c16-head_c32-fc_c10"
HSWISH = "in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16_hs1-head_c32-fc_c10"  # HARD_SWISH: not in the op table
PRE = Preprocess(source_size=16, channels=1, mean=(0.3,), std=(0.4,), channel_order="gray")


def _model(arch: str) -> tuple[torch.nn.Module, DeployInfo]:
    torch.manual_seed(0)
    spec = parse(arch)
    model = build(spec).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model, DeployInfo.for_arch(spec, PRE, tuple(f"c{i}" for i in range(10)))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def ir_files(images: np.ndarray) -> dict[str, bytes]:
    model, info = _model(IR)
    return {"fp32": tflite.to_tflite(model, info, precision="fp32"),
            "int8": tflite.to_tflite(model, info, precision="int8", calibration=images, preprocess=PRE),
            "onnx": to_onnx(model, info)}


def test_fp32_tflite_computes_what_the_onnx_file_computes(ir_files: dict[str, bytes], images: np.ndarray) -> None:
    x = to_tensor(images, PRE, 12).numpy()
    sess = session(ir_files["onnx"], threads=1)
    expected = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    got = tflite.tflite_logits(ir_files["fp32"], tflite.nhwc_inputs(images, PRE, 12))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_int8_tflite_is_integer_throughout_and_close_to_fp32(ir_files: dict[str, bytes], images: np.ndarray) -> None:
    it = tflite.interpreter(ir_files["int8"])
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    x = tflite.nhwc_inputs(images, PRE, 12)
    fp32, int8 = tflite.tflite_logits(ir_files["fp32"], x), tflite.tflite_logits(ir_files["int8"], x)
    # quantization error, not a broken conversion: the same top-1 on nearly every image
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.85
    assert np.abs(fp32 - int8).max() < 0.25 * np.abs(fp32).max()


def test_metadata_carries_the_deploy_contract(ir_files: dict[str, bytes]) -> None:
    meta = tflite.read_metadata(ir_files["int8"])
    contract = parse_contract(meta, "model_int8.tflite")
    assert meta["hwnas.arch"] == IR and meta["hwnas.precision"] == "int8"
    assert contract["input"]["layout"] == "NHWC" and contract["input"]["shape"] == [1, 12, 12, 1]
    assert contract["input"]["dtype"] == "int8" and contract["input"]["quantization"]["scale"] > 0
    assert contract["resize"]["antialias"] is True and contract["resize"]["from"] == [16, 16]
    assert contract["mean"] == [0.3] and contract["std"] == [0.4]
    onnx_contract = json.loads(read_metadata_bytes(ir_files["onnx"])[CONTRACT_KEY])
    assert onnx_contract["input"]["layout"] == "NCHW" and onnx_contract["input"]["batch"] == "dynamic"


def read_metadata_bytes(data: bytes) -> dict[str, str]:
    import onnx
    return {p.key: p.value for p in onnx.load_from_string(data).metadata_props}


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_the_contract_alone_reproduces_the_training_inputs(ir_files: dict[str, bytes], images: np.ndarray,
                                                           kind: str) -> None:
    """apply_contract reads nothing but the file's metadata, and feeds the file what training fed the network."""
    contract = parse_contract(tflite.read_metadata(ir_files[kind]), kind)
    expected = tflite.tflite_logits(ir_files[kind], tflite.nhwc_inputs(images[:8], PRE, 12))
    it = tflite.interpreter(ir_files[kind])
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    for i in range(8):
        it.set_tensor(inp["index"], apply_contract(images[i], contract))
        it.invoke()
        np.testing.assert_allclose(read_output(it.get_tensor(out["index"]), contract)[0], expected[i], atol=1e-4)


def test_readiness_passes_an_int8_inverted_residual_network(ir_files: dict[str, bytes]) -> None:
    result = check_edgetpu(ir_files["int8"])
    assert result.ready, result.summary()
    assert {o.op for o in result.ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN"}
    assert result.to_attrs()["edgetpu_ready"] is True


def test_readiness_names_float_tensors_of_an_fp32_file(ir_files: dict[str, bytes]) -> None:
    result = check_edgetpu(ir_files["fp32"])
    assert not result.ready and "FLOAT32" in result.summary() and "--precision int8" in result.summary()


def test_readiness_names_the_op_that_falls_back_and_everything_after(images: np.ndarray) -> None:
    model, info = _model(HSWISH)
    result = check_edgetpu(tflite.to_tflite(model, info, precision="int8", calibration=images, preprocess=PRE))
    assert not result.ready
    first = result.cpu_ops[0]
    assert first.op == "HARD_SWISH" and "operation table" in first.reason
    later = [o for o in result.ops if o.index > first.index]
    assert later and all(not o.on_tpu for o in later)  # the compiler maps one prefix only
    assert all(o.on_tpu for o in result.ops if o.index < first.index)
    assert "HARD_SWISH" in result.summary()


def test_compiler_command_is_the_one_to_run() -> None:
    assert compiler_command("models/0003/model_int8.tflite") == \
        "edgetpu_compiler -s -o models/0003 models/0003/model_int8.tflite"


@pytest.mark.parametrize("route, per_channel", [("pt2e", True), ("aiq", False)])
def test_every_int8_route_is_integer_throughout_and_close_to_fp32(ir_files: dict[str, bytes], images: np.ndarray,
                                                                  route: str, per_channel: bool) -> None:
    model, info = _model(IR)
    data = tflite.to_tflite(model, info, precision="int8", calibration=images, preprocess=PRE, route=route,
                            per_channel=per_channel)
    it = tflite.interpreter(data)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    x = tflite.nhwc_inputs(images, PRE, 12)
    fp32, int8 = tflite.tflite_logits(ir_files["fp32"], x), tflite.tflite_logits(data, x)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.85
    with pytest.raises(UserError, match="int8 TFLite route 'tf' not allowed; allowed: aiq, pt2e"):
        tflite.to_tflite(model, info, precision="int8", calibration=images, preprocess=PRE, route="tf")


def test_the_int8_file_is_the_route_with_the_best_validation_accuracy(images: np.ndarray) -> None:
    model, info = _model(IR)
    labels = torch.argmax(model(to_tensor(images, PRE, 12)), 1).numpy().astype(np.int64)  # the float model's answers
    splits = Splits("t", tuple(f"c{i}" for i in range(10)), images, labels, images[:32], labels[:32], images[32:],
                    labels[32:], PRE)
    options = Int8Options(calibration_images=16, calibration_method="entropy")
    _, measured = tflite_file(model, info, ARTIFACT_KINDS["tflite-int8"], splits, resolution=12, seed=0,
                              rel_path="m/model_int8.tflite", int8=options)
    extra = dict(measured.extra)
    val = extra["int8_route_val_accuracy"]
    assert set(val) == {"aiq", "pt2e"} and extra["int8_route"] == max(val, key=lambda r: (val[r], r == "aiq"))
    assert measured.val_accuracy == pytest.approx(val[extra["int8_route"]], abs=1e-6)
    assert "chosen on validation accuracy" in measured.how and "16 training images" in measured.how
    assert "calibration entropy: the TFLite int8 routes calibrate min-max only" in measured.how
    assert "edgetpu_ready" in extra


def test_qat_weights_are_a_further_candidate_kept_only_when_better_on_validation(images: np.ndarray) -> None:
    """The QAT copy's file competes on validation accuracy: kept (and said, with how it was tuned)
    when it is better, and not when the network's own file is."""
    good, info = _model(IR)
    labels = torch.argmax(good(to_tensor(images, PRE, 12)), 1).numpy().astype(np.int64)
    splits = Splits("t", tuple(f"c{i}" for i in range(10)), images, labels, images[:32], labels[:32], images[32:],
                    labels[32:], PRE)
    broken, _ = _model(IR)
    with torch.no_grad():  # answers one class whatever the image
        broken.classifier.bias.copy_(torch.tensor([1e3] + [0.0] * 9))
    options = Int8Options(calibration_images=16, routes=("aiq",))
    kind = ARTIFACT_KINDS["tflite-int8"]
    _, measured = tflite_file(broken, info, kind, splits, resolution=12, seed=0, rel_path="m/model_int8.tflite",
                              int8=options, qat=QatWeights(good, "a QAT-tuned copy (test)"))
    extra = dict(measured.extra)
    assert set(extra["int8_route_val_accuracy"]) == {"aiq", "qat+aiq"} and extra["int8_route"] == "qat+aiq"
    assert "from a QAT-tuned copy (test)" in measured.how and measured.val_accuracy > 0.8
    _, measured = tflite_file(good, info, kind, splits, resolution=12, seed=0, rel_path="m/model_int8.tflite",
                              int8=options, qat=QatWeights(broken, "a QAT-tuned copy (test)"))
    assert dict(measured.extra)["int8_route"] == "aiq" and "from a QAT-tuned copy" not in measured.how


def test_a_route_that_cannot_convert_the_network_leaves_the_other(images: np.ndarray,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def only_aiq(*args: object, route: str = "aiq", **kwargs: object) -> bytes:
        if route == "pt2e":
            raise RuntimeError("unsupported op\nmore detail")
        return tflite.to_tflite(*args, route=route, **kwargs)

    monkeypatch.setattr(artifacts, "to_tflite", only_aiq)
    model, info = _model(IR)
    labels = np.zeros(len(images), dtype=np.int64)
    splits = Splits("t", tuple(f"c{i}" for i in range(10)), images, labels, images[:16], labels[:16], images[16:32],
                    labels[16:32], PRE)
    _, measured = tflite_file(model, info, ARTIFACT_KINDS["tflite-int8"], splits, resolution=12, seed=0,
                              rel_path="m/model_int8.tflite", int8=Int8Options(calibration_images=8))
    assert dict(measured.extra)["int8_route"] == "aiq"
    assert "route pt2e failed (RuntimeError: unsupported op)" in measured.how


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_pi_readme_snippet_feeds_the_file_as_hwnas_predict_does(ir_files: dict[str, bytes], precision: str,
                                                                    tmp_path: Path) -> None:
    """The LiteRT code a Raspberry Pi model's README gives, run as written on an image of another
    size than the source, computes what the deploy contract's reference computes."""
    path = tmp_path / f"model_{precision}.tflite"
    path.write_bytes(ir_files[precision])
    contract = parse_contract(tflite.read_metadata(path), str(path))
    image = np.random.default_rng(1).integers(0, 256, (23, 19), dtype=np.uint8)
    Image.fromarray(image, mode="L").save(tmp_path / "image.png")
    printed, namespace = io.StringIO(), {"IMAGE": str(tmp_path / "image.png")}
    with contextlib.redirect_stdout(printed):
        exec(litert_snippet(str(path), contract, threads=1), namespace)  # noqa: S102
    it = tflite.interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], apply_contract(image, contract))
    it.invoke()
    expected = read_output(it.get_tensor(out["index"]), contract)
    assert int(printed.getvalue()) == int(expected.argmax())
    # the same input to the last rounding step: fp32 to float error, int8 within one output step
    step = out["quantization"][0] or 1e-4
    np.testing.assert_allclose(namespace["logits"], expected, rtol=0, atol=step * 1.01)
