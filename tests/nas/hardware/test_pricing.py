"""Pricing a network on a profile: costs, memory fit, measured or predicted latency with its
reason when there is none, and what falls back to the host CPU."""
from __future__ import annotations

import pytest

from nas.cost.layers import layer_table
from nas.hardware.latency_model import predict
from nas.hardware.pricing import host_fallback, host_layer_names, predict_latency, predict_on_profiles, price, split_price
from nas.hardware.profiles import calibrated_predicted_profiles, load_profile
from nas.space.arch import parse
from nas.space.builder import build
from nas.space.zoo import DEFAULT_RESOLUTION, FAMILIES, mobilenet_v2, shufflenet_v1, shufflenet_v2

SMALL = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"


def test_price_on_the_host_measures_the_export_at_each_precision() -> None:
    fp32 = price(parse(SMALL), load_profile("cpu"))
    assert fp32.costs.macs == 21536 and fp32.latency_kind == "measured" and (fp32.latency_ms or 0) > 0
    assert "1 thread(s)" in fp32.latency_how and fp32.memory.fits is None
    int8 = price(parse(SMALL), load_profile("cpu"), precision="int8")
    assert (int8.latency_ms or 0) > 0 and "static int8 QDQ export" in int8.latency_how
    assert int8.costs.weight_mb == pytest.approx(0.00041) == fp32.costs.weight_mb / 4
    assert set(fp32.to_json()) >= {"macs", "parameters", "latency_ms", "latency_kind", "profile", "profile_version"}


def test_edge_tpu_memory_unsupported_ops_and_fallback() -> None:
    # MobileNetV2 1.0 at int8 holds ~3.5 MB of weights: they fit the Edge TPU's 8 MB on chip.
    p = price(mobilenet_v2(), load_profile("edgetpu"), precision="int8")
    assert p.memory.on_chip_mb == 8 and p.memory.weights_streamed_mb == 0.0
    assert p.latency_ms is not None and 1 < p.latency_ms < 10  # Coral publishes 2.6 ms (USB)
    assert "Edge TPU runtime + TFLite" in p.latency_how and "batch 1" in p.latency_how
    # ShuffleNetV1's grouped convs and shuffle do not map: the compiler stops at the first block's
    # shuffle, and the stem's pooled output (56x56x24) and the first 1x1 conv's (56x56x60) cross.
    edgetpu = load_profile("edgetpu")
    assert edgetpu.device is not None
    p = price(shufflenet_v1(groups=3), edgetpu, precision="int8")
    assert p.unsupported_kinds == ("gconv", "shuffle") and "cannot run on edgetpu" in p.latency_how
    assert p.host_fallback is not None and p.host_fallback.first == "blocks.0.branch.1"
    assert p.host_fallback.macs_share > 0.9
    assert p.host_fallback.transfer_mb == pytest.approx((56 * 56 * 24 + 56 * 56 * 60) / 1e6)
    assert p.to_json()["host_fallback"]["from"] == "blocks.0.branch.1"  # type: ignore[index]
    # ... and that split is priced: the device's part, the host's part on the fallback profile, the link
    layers = layer_table(shufflenet_v1(groups=3))
    split = split_price(layers, edgetpu, "int8")
    assert split is not None and p.latency_ms == pytest.approx(split.total_ms)
    host = [l for l in layers if l.name in host_layer_names(layers, edgetpu.device.supported_kinds, "rest")]
    pi = load_profile("raspberry-pi4")
    assert split.host_ms == pytest.approx(predict(host, pi.device_model("int8"), precision="int8").total_ms)
    assert split.link_ms > 0 and split.device_ms < split.host_ms
    assert "on the host CPU priced by profile raspberry-pi4@" in p.latency_how


def test_dpu_resumes_after_each_op_it_cannot_run() -> None:
    layers = layer_table(shufflenet_v2())
    dpu = load_profile("zynq-zcu102-dpu").device
    assert dpu is not None
    fallback = host_fallback(layers, dpu.supported_kinds, dpu.fallback, "int8")
    moved = [l for l in layers if l.kind in ("shuffle", "slice")]
    assert fallback is not None and fallback.first == "blocks.0.shuffle" and fallback.macs_share == 0.0
    assert fallback.layers == len(moved) == 42
    assert host_fallback(layers, dpu.supported_kinds, "none", "int8") is None


def test_predictions_say_why_they_are_missing() -> None:
    layers = layer_table(mobilenet_v2(resolution=64))
    assert "cannot run fp32; allowed: int8" in (predict_latency(layers, load_profile("edgetpu"), "fp32").error or "")
    assert "cannot run int8; allowed: fp32, fp16" in (
        predict_latency(layers, load_profile("jetson-nano"), "int8").error or "")
    zc706 = predict_latency(layers, load_profile("zynq-zc706"), "fp32", other_precision_ok=True)
    assert zc706.ms is not None and zc706.ms > 0 and zc706.precision == "fp16"
    assert predict_latency(layers, load_profile("zynq-zc706"), "fp32").error is not None


def test_every_calibrated_profile_prices_a_network_the_same_way_cost_does() -> None:
    spec = parse(SMALL)
    predicted = predict_on_profiles(spec, build(spec), calibrated_predicted_profiles(), precision="fp16",
                                    target=load_profile("jetson-nano"))
    nano = price(spec, load_profile("jetson-nano"), precision="fp16")
    assert predicted["jetson-nano"].ms == nano.latency_ms and nano.latency_kind == "predicted"
    assert predicted["raspberry-pi4"].precision == "fp32"  # the Pi is calibrated at fp32 only


def test_every_precision_of_a_device_prices_every_zoo_family() -> None:
    """Every family of the zoo at its default resolution gets a number on every precision each
    device profile is calibrated for (ops the device cannot run priced on its host fallback)."""
    tables = {name: layer_table(family(resolution=DEFAULT_RESOLUTION.get(name, 224), classes=1000, in_chs=3))
              for name, family in FAMILIES.items() if name != "fbnet"}
    for profile in ("edgetpu", "edgetpu-devboard", "zynq-zcu102-dpu", "jetson-nano", "raspberry-pi4"):
        p = load_profile(profile)
        for precision in p.model or {}:
            for name, layers in tables.items():
                result = predict_latency(layers, p, precision)
                assert result.ms is not None and result.ms > 0, (profile, precision, name, result.error)


def test_a_tiny_network_is_not_priced_below_the_devices_invocation_floor() -> None:
    tiny = parse("in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s2_e3_c16-head_c64-fc_c10")
    edgetpu = load_profile("edgetpu")
    assert edgetpu.device is not None and edgetpu.device.min_latency_ms is not None
    prediction = predict_latency(layer_table(tiny), edgetpu, "int8")
    assert prediction.ms == edgetpu.device.min_latency_ms.value
    assert "per-invocation floor" in (prediction.caveat or "") and "HW-NAS-Bench" in (prediction.caveat or "")
    large = predict_latency(layer_table(mobilenet_v2(resolution=224)), edgetpu, "int8")
    assert large.ms is not None and large.ms > edgetpu.device.min_latency_ms.value
    assert "floor" not in (large.caveat or "")


def test_a_prediction_carries_the_band_of_its_profiles_held_out_error() -> None:
    profile = load_profile("jetson-nano")
    assert profile.model is not None and profile.model["fp16"].held_out_ratios  # refit with its residuals
    p = price(mobilenet_v2(resolution=224), profile, precision="fp16")
    assert p.latency_ms is not None and p.band_ms is not None and p.band_ms[0] < p.latency_ms < p.band_ms[1]
    data = p.to_json()
    assert data["latency_band_ms"] == [round(v, 6) for v in p.band_ms]
    assert "10th-90th percentile of held-out error (leave-one-family-out" in str(data["latency_band"])
