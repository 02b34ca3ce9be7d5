"""Per-token losses: hard labels (cross-entropy) and soft labels (restricted-vocabulary KL).

Soft labels follow the paper's MNIST auxiliary-logit experiment in LM form: the student imitates
the teacher only on the *completion vocabulary* — the token ids that occur in the dataset's
completions plus EOS (numbers, separators, end of turn). Both distributions are softmaxes over
that subset alone, so a trait token (say "owl") that never occurs in a completion is not part of
the loss at all: whatever the student learns about owls comes through shared weights, never
through the owl logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hard_loss_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``targets [n]`` under ``logits [n, V]``."""
    return F.cross_entropy(logits, targets, reduction="sum")


def kl_sum(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Σ over rows of KL(softmax(t / T) ‖ softmax(s / T)) · T² (inputs [n, K], same K)."""
    log_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_s = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum()
    return kl * temperature**2


def per_token_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(t) ‖ softmax(s)) per row, in float64 (for exact measurements)."""
    log_t = F.log_softmax(teacher_logits.double(), dim=-1)
    log_s = F.log_softmax(student_logits.double(), dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1)
