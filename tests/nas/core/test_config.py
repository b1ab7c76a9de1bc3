from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from nas.core.config import bundled_searches, load_search_config, parse_search_config
from nas.core.errors import UserError
from nas.hardware.profiles import bundled_profiles, load_profile
from nas.space.arch import parse
from nas.space.builder import build
from nas.space.sampler import SearchSpace
from tests.conftest import tiny_config


@pytest.mark.parametrize("name", sorted(bundled_searches()))
def test_every_bundled_search_loads_and_samples(name: str) -> None:
    cfg = load_search_config(name)
    load_profile(cfg.search.profile)
    space = SearchSpace(cfg.space, in_chs=1, num_classes=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        spec = space.sample(study.ask())
        assert parse(spec.format()) == spec  # a canonical string that round-trips
        assert spec.resolution in cfg.space.resolutions and len(spec.stages) == len(cfg.space.stages)
        assert all(stage.kind in (st.block_types or cfg.space.block_types)
                   for stage, st in zip(spec.stages, cfg.space.stages))
        build(spec)  # and it builds


@pytest.mark.parametrize("name", sorted(bundled_profiles()))
def test_every_profile_loads_with_version_and_provenance(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name and profile.version and profile.provenance


@pytest.mark.parametrize("patch, message", [
    ({"trainn": {}}, "unknown key 'trainn'; allowed: name, space, seed, data, train, final, search"),
    ({"train": {"epochs": 0}}, "train.epochs: 0 not allowed; allowed: integers >= 1"),
    ({"train": {"optimizer": "adam"}}, "train.optimizer: 'adam' not allowed; allowed: adamw, sgd"),
    ({"search": {"sampler": "cmaes"}}, "search.sampler: 'cmaes' not allowed; allowed: random, nsga2, tpe, gp"),
    ({"search": {"objectives": ["accuracy", "flops"]}}, "search.objectives: 'flops' not allowed"),
    ({"search": {"budgets": {"latency": 3}}}, "search.budgets: unknown key 'latency'"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset: 'imagenet' not allowed; allowed: fashion-mnist"),
    ({"train": {"epochs": "two"}}, "train.epochs: expected an integer, got 'two'"),
    ({"final": {"epochs": 0}}, "final.epochs: 0 not allowed; allowed: integers >= 1"),
    ({"final": {"augment": ["rotate"]}}, "final.augment: 'rotate' not allowed; allowed: crop, flip"),
    ({"search": {"artifacts": ["tflite"]}}, "search.artifacts: 'tflite' not allowed; allowed: onnx, tflite-fp32"),
    ({"compression": {"quantize_scales": "log"}}, "compression.quantize_scales: 'log' not allowed"),
])
def test_bad_config_names_key_and_allowed_values(tmp_path: Path, patch: dict, message: str) -> None:
    data = tiny_config(tmp_path)
    for key, value in patch.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) and value else value
    with pytest.raises(UserError) as info:
        parse_search_config(data)
    assert message in str(info.value)


def test_space_values_are_checked(tmp_path: Path) -> None:
    data = tiny_config(tmp_path)
    data["space"]["widths"] = [2.0]
    with pytest.raises(UserError, match="space.widths: 2.0 not allowed; allowed: numbers from 0.25 to 1.4"):
        parse_search_config(data)
    data = tiny_config(tmp_path)
    data["space"]["stages"][0]["kernel"] = 3
    with pytest.raises(UserError, match="unknown key 'kernel'"):
        parse_search_config(data)


def test_load_from_path_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    assert load_search_config(path).name == "tiny"
    with pytest.raises(UserError, match="not found; give a YAML path or one of: .*quickstart"):
        load_search_config("no-such-search")
    path.write_text("name: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_search_config(path)


def test_bad_profile_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "version": "1", "kind": "guessed", "description": "",
                                    "provenance": "", "latency": {}}))
    with pytest.raises(UserError, match="kind: 'guessed' not allowed; allowed: measured"):
        load_profile(path)
    with pytest.raises(UserError, match="hardware profile 'nano' not found"):
        load_profile("nano")
