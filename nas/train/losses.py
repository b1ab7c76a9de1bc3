"""Distillation losses (Hinton et al. 2015), shared by candidate training with a teacher
(:mod:`nas.train.trainer`) and fine-tuning after compression (:mod:`compress.distill`).

>>> import torch
>>> float(soft_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=4.0))
0.0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), Hinton's soft-target term."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy(labels)."""
    return (alpha * soft_loss(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels))
