"""QAT where post-training int8 is not enough: a final's int8 TFLite file is also made from a
copy of the final fine-tuned with int8 fake quantization (``final.int8_qat_iters`` steps,
distilled from the final), and :func:`nas.deploy.artifacts.tflite_file` keeps whichever file has
the better validation accuracy. Search trials (short proxy trainings) make their int8 file by
post-training quantization only; a recipe that asks for QAT already hands its QAT-tuned network
to every int8 file, so it gets no second round.
"""
from __future__ import annotations

from torch import nn

from compress.qat import qat_tuned
from compress.recipe import Recipe, tflite_int8_options
from nas.core.config import FinalConfig, TrainConfig
from nas.core.progress import note
from nas.data.splits import Splits
from nas.deploy.tflite_int8 import QatWeights

def final_qat_weights(model: nn.Module, train: TrainConfig | None, recipe: Recipe | None, splits: Splits, *,
                      resolution: int, seed: int) -> QatWeights | None:
    """The QAT-tuned copy of a final ``model`` for its int8 TFLite file, or None where none is
    made (not a final, ``int8_qat_iters: 0``, or the recipe already trained with QAT)."""
    if not isinstance(train, FinalConfig) or train.int8_qat_iters == 0:
        return None
    if recipe is not None and recipe.quantize is not None and recipe.quantize.qat_iters > 0:
        return None
    note("    QAT for the int8 file: %d steps with int8 fake quantization", train.int8_qat_iters)
    tuned = qat_tuned(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=resolution,
                      iterations=train.int8_qat_iters, lr=train.int8_qat_lr,
                      per_channel=tflite_int8_options(recipe).per_channel, seed=seed + 13)
    return QatWeights(tuned, f"a QAT-tuned copy ({train.int8_qat_iters} steps with int8 fake quantization at lr "
                             f"{train.int8_qat_lr:g}, distilled from the final)")
