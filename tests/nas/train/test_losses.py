"""Distillation losses, checked against their formulas."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.train.losses import kd_loss, soft_loss


def test_soft_loss_is_t_squared_kl_and_zero_on_agreement() -> None:
    student, teacher = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[0.5, 2.5, 0.0]])
    t = 2.0
    p_teacher = F.softmax(teacher / t, dim=1)
    expected = t * t * float((p_teacher * (p_teacher.log() - F.log_softmax(student / t, dim=1))).sum())
    assert float(soft_loss(student, teacher, t)) == pytest.approx(expected, rel=1e-5)
    assert float(soft_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_mixes_soft_and_label_terms_by_alpha() -> None:
    student, teacher, labels = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    ce = float(F.cross_entropy(student, labels))
    soft = float(soft_loss(student, teacher, 4.0))
    assert float(kd_loss(student, teacher, labels, temperature=4.0, alpha=0.0)) == pytest.approx(ce)
    assert float(kd_loss(student, teacher, labels, temperature=4.0, alpha=1.0)) == pytest.approx(soft)
    assert float(kd_loss(student, teacher, labels, temperature=4.0, alpha=0.25)) == pytest.approx(
        0.25 * soft + 0.75 * ce, rel=1e-5)
