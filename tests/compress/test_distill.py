"""Fine-tuning after compression: seeded, in place, distilled when given a teacher."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.distill import fine_tune
from nas.data.splits import Preprocess
from nas.space.arch import parse
from nas.space.builder import build
from tests.conftest import pattern_images

PRE = Preprocess(source_size=16, channels=1, mean=(0.3,), std=(0.3,), channel_order="gray")
ARCH = "in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s1_e3_c16-head_c32-fc_c4"


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=256).astype(np.int64)
    return pattern_images(labels, 16, rng), labels


def test_fine_tuning_learns_is_seeded_and_leaves_the_model_contiguous() -> None:
    images, labels = _data()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build(parse(ARCH))
        runs.append(fine_tune(model, images, labels, preprocess=PRE, resolution=16, iterations=40, batch_size=32,
                              lr=1e-2, seed=5))
    assert runs[0] == runs[1] and len(runs[0]) == 4  # the loss of every 10th step, the same twice
    assert runs[0][-1] < runs[0][0]
    assert not model.training and all(p.is_contiguous() for p in model.parameters())
    assert fine_tune(model, images, labels, preprocess=PRE, resolution=16, iterations=0) == []


def test_a_teacher_and_hooks_take_part() -> None:
    images, labels = _data()
    teacher = build(parse(ARCH)).eval()
    steps: list[int] = []
    model = build(parse(ARCH))
    distilled = fine_tune(model, images, labels, preprocess=PRE, resolution=16, iterations=10, batch_size=32,
                          teacher=teacher, alpha=1.0, after_step=lambda m, step: steps.append(step))
    assert steps == list(range(10)) and len(distilled) == 1
    plain = fine_tune(build(parse(ARCH)), images, labels, preprocess=PRE, resolution=16, iterations=10,
                      batch_size=32)
    assert distilled[0] != pytest.approx(plain[0])  # alpha 1: the teacher's logits, not the labels
