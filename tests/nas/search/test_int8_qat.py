"""QAT for a final's int8 file: made only for finals that ask for it, a tuned copy (the final's
own weights untouched), and older finals' records read with today's defaults."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.recipe import QuantizeConfig, Recipe
from nas.core.config import FinalConfig, TrainConfig
from nas.core.errors import UserError
from nas.data.splits import Preprocess, Splits
from nas.search.finals import final_config_of
from nas.search.int8_qat import final_qat_weights
from nas.space.arch import parse
from nas.space.builder import build

ARCH = "in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16-head_c32-fc_c4"
PRE = Preprocess(source_size=12, channels=1, mean=(0.3,), std=(0.4,), channel_order="gray")


@pytest.fixture(scope="module")
def splits() -> Splits:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 12, 12, 1), dtype=np.uint8)
    y = rng.integers(0, 4, 48).astype(np.int64)
    return Splits("t", ("a", "b", "c", "d"), x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], PRE)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_final_gets_a_tuned_copy_and_keeps_its_own_weights(splits: Splits) -> None:
    torch.manual_seed(0)
    model = build(parse(ARCH)).eval()
    before = _weights(model)
    qat = final_qat_weights(model, FinalConfig(int8_qat_iters=3, batch_size=8), None, splits, resolution=12, seed=0)
    assert qat is not None and "3 steps with int8 fake quantization" in qat.describe
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the final is unchanged
    conv = next(m for m in qat.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in qat.model.modules())  # folded, as deployed
    assert conv.bias is not None and not qat.model.training


@pytest.mark.parametrize("train, recipe", [
    (TrainConfig(), None),  # a search trial: post-training int8 only
    (FinalConfig(int8_qat_iters=0), None),  # turned off
    (FinalConfig(int8_qat_iters=3), Recipe(quantize=QuantizeConfig(qat_iters=5))),  # the recipe trained with QAT
    (None, None),  # a re-export of a search trial
])
def test_no_qat_copy_where_none_is_asked_or_the_recipe_had_one(splits: Splits, train: TrainConfig | None,
                                                             recipe: Recipe | None) -> None:
    model = build(parse(ARCH)).eval()
    assert final_qat_weights(model, train, recipe, splits, resolution=12, seed=0) is None


def test_final_settings_of_an_older_record_take_todays_defaults() -> None:
    old = {"final": {"epochs": 30, "lr": 0.005, "augment": None, "threads": 1}}
    cfg = final_config_of(old)
    assert cfg is not None and cfg.epochs == 30 and cfg.int8_qat_iters == FinalConfig().int8_qat_iters
    assert final_config_of({"arch": ARCH}) is None
    with pytest.raises(UserError, match="final.int8_qat_iters"):
        FinalConfig(int8_qat_iters=-1)
