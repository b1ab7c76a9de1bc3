"""Each target's model README leads with its own deployment steps."""
from __future__ import annotations

import pytest

from nas.deploy.contract import preprocess_contract
from nas.search.deploy_steps import deploy_section
from nas.search.model_card import model_card
from nas.search.record import CandidateResult

FILES = {"onnx": {"path": "trials/0001/model.onnx"}, "tflite-fp32": {"path": "trials/0001/model_fp32.tflite"},
         "tflite-int8": {"path": "trials/0001/model_int8.tflite", "edgetpu_summary": "Edge TPU ready: 12 ops"}}


@pytest.mark.parametrize("profile, first, absent", [
    ("raspberry-pi4", 'Interpreter(model_path="model_int8.tflite", num_threads=4)', "edgetpu_compiler"),
    ("jetson-nano", "trtexec --onnx=model.onnx --fp16 --shapes=input:1x3x32x32", "edgetpu_compiler"),
    ("zynq-zcu102-dpu", "vai_q_onnx.quantize_static", "edgetpu_compiler"),
    ("edgetpu", "edgetpu_compiler", "trtexec"),
    ("cpu", "onnxruntime", "edgetpu_compiler"),
])
def test_the_target_leads(profile: str, first: str, absent: str) -> None:
    contract = preprocess_contract(source_size=32, resolution=32, channels=3, channel_order="RGB",
                                   mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), layout="NHWC")
    card = model_card(CandidateResult(arch="a", seed=0, profile=profile, profile_version="1", precision="int8"),
                      FILES, input_shape=(1, 3, 32, 32), contract=contract)
    deploy = card[card.index(f"## Deploy on {profile}"):card.index("## Figures")]
    assert card.index(f"## Deploy on {profile}") < card.index("| file") and first in deploy and absent not in deploy
    if profile == "raspberry-pi4":
        assert "[0.49, 0.48, 0.45]" in deploy and '.convert("RGB")' in deploy


def test_a_pi_folder_without_tflite_says_how_to_make_one() -> None:
    lines = deploy_section("raspberry-pi4", {"onnx": {}}, (1, 1, 28, 28), None)
    assert any("--format tflite --precision int8" in line for line in lines)
