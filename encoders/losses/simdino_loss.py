"""SimDINO's losses: cosine alignment of student and teacher embeddings, and a coding-rate term that spreads them.

DINO avoids collapse with prototypes, centering and sharpening, a balance that small batches lose (the targets
drift to uniform and the loss sits at ``ln K``). SimDINO drops all three. The heads output unit vectors
(:class:`encoders.heads.ProjectionHead`); the loss pulls each student view towards the teacher's other views
(``1 - cos``) and pushes the batch apart with the coding rate

    R_eps(Z) = 1/2 logdet(I + d / (b * eps) Z^T Z),     Z: (b, d) unit rows,

the number of nats needed to code the rows of ``Z`` up to a distortion set by ``eps`` (``eps`` is the
paper's epsilon squared). ``R`` is largest when the rows spread evenly over ``min(b, d)`` directions and 0 when
they coincide, so no state of the networks makes the objective flat. SimDINOv2 adds the same cosine alignment
on the patches masked in the student's view.

Reference: Wu et al. 2025, "Simplifying DINO via Coding Rate Regularization" (arXiv 2502.10385), Eq. (6)-(8) and
the authors' ``MCRLoss`` / ``CosinePatchLoss``; Ma et al. 2007 and Yu et al. 2020 (MCR^2) for the coding rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def coding_rate(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``1/2 logdet(I_d + d / (b eps) Z^T Z)`` of ``z`` ``(b, d)``, a scalar in fp32 (autocast off).

    Computed on the smaller of the ``b x b`` and ``d x d`` Gram matrices (they share their non-zero eigenvalues)
    with a Cholesky factorisation: ``1/2 logdet(M) = sum(log(diag(chol(M))))``.
    """
    if z.ndim != 2 or z.shape[0] < 1:
        raise ValueError(f"coding_rate expects a (batch, dim) matrix, got shape {tuple(z.shape)}")
    if eps <= 0:
        raise ValueError(f"coding-rate eps must be > 0, got {eps}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = z.float()
        b, d = z.shape
        gram = z @ z.T if b <= d else z.T @ z  # (min(b, d), min(b, d))
        eye = torch.eye(gram.shape[0], device=z.device, dtype=z.dtype)
        factor = torch.linalg.cholesky_ex(eye + (d / (b * eps)) * gram)[0]
        return factor.diagonal().log().sum()


def balanced_coding_rate_weight(batch_size: int, dim: int) -> float:
    """SimDINO's heuristic weight of the coding rate, ``(d + b) / (d b)``, which keeps its gradient comparable to
    the alignment term's across batch sizes and widths (the authors' ``MCRLoss``)."""
    return (dim + batch_size) / (dim * batch_size)


class SimDINOLoss(nn.Module):
    """Image-level SimDINO loss on cls embeddings: view alignment minus the weighted coding rate of the batch.

    Args:
        eps: distortion of the coding rate (``eps = epsilon^2``; 0.05 in the paper's configs).
        coding_rate_weight: multiplier of the balanced weight :func:`balanced_coding_rate_weight`.
    """

    def __init__(self, eps: float = 0.05, coding_rate_weight: float = 1.0):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"simdino.coding_rate_eps must be > 0, got {eps}")
        if coding_rate_weight < 0:
            raise ValueError(f"simdino.coding_rate_weight must be >= 0, got {coding_rate_weight}")
        self.eps = eps
        self.coding_rate_weight = coding_rate_weight

    @staticmethod
    def alignment(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean ``1 - cos`` over every (student view, teacher view) pair of the same images, except a global view
        with itself. ``student``: the global views first, then the local views, each ``(B, d)``; ``teacher``: the
        global views ``(B, d)``, in the same order as the student's first ones."""
        total, pairs = 0.0, 0
        for i, s in enumerate(student):
            for j, t in enumerate(teacher):
                if i == j:
                    continue
                total = total + (1.0 - F.cosine_similarity(s.float(), t.float(), dim=-1)).mean()
                pairs += 1
        if pairs == 0:
            raise ValueError("SimDINO alignment needs at least 2 views (2 global crops, or 1 global and local crops)")
        return total / pairs

    def expansion(self, student_global: Sequence[torch.Tensor], teacher_global: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weighted coding rate of each global view's batch, averaged over the views: the authors' default takes it
        on the mean of the student and teacher embeddings of that view (``(s + t) / 2``, gradients through ``s``)."""
        rates = []
        for s, t in zip(student_global, teacher_global, strict=True):
            z = (s.float() + t.float()) / 2  # (B, d)
            weight = self.coding_rate_weight * balanced_coding_rate_weight(z.shape[0], z.shape[1])
            rates.append(weight * coding_rate(z, self.eps))
        return torch.stack(rates).mean()

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alignment, expansion)``: the loss is ``alignment - expansion`` (see :meth:`alignment`,
        :meth:`expansion`); both are returned so that they can be weighted and logged apart."""
        n = len(teacher)
        return self.alignment(student, teacher), self.expansion(student[:n], teacher)


def masked_patch_alignment(
    student: torch.Tensor, teacher: torch.Tensor, masks_weight: torch.Tensor, n_images: int
) -> torch.Tensor:
    """SimDINOv2's patch loss: ``sum_p w_p (1 - cos(s_p, t_p)) / n_images`` over the masked patches ``p``.

    ``student``, ``teacher``: embeddings of the masked patches ``(M, d)`` (student: masked input; teacher: the
    unmasked view); ``masks_weight`` ``(M,)``: ``1 / (masked patches of its image)``, so every masked image counts
    once; ``n_images``: global crops in the batch (unmasked ones count as 0, as iBOT's per-image average).
    """
    if student.shape != teacher.shape or student.shape[0] != masks_weight.shape[0]:
        raise ValueError(
            f"masked_patch_alignment: student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and weights "
            f"{tuple(masks_weight.shape)} must describe the same masked patches"
        )
    distance = 1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)  # (M,)
    return (distance * masks_weight.float()).sum() / max(n_images, 1)


__all__ = ["SimDINOLoss", "balanced_coding_rate_weight", "coding_rate", "masked_patch_alignment"]
