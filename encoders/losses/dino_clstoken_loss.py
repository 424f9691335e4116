"""The DINO loss on cls tokens: student log-softmax against a centred, sharpened teacher distribution.

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers";
Oquab et al. 2023, "DINOv2" (``dinov2/loss/dino_clstoken_loss.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from encoders.losses.sinkhorn import sinkhorn_knopp
from encoders.losses.teacher_center import TeacherCenter
from encoders.train.distributed import get_world_size


class DINOLoss(TeacherCenter):
    """Cross-entropy between teacher probabilities and student log-probabilities over ``K`` prototypes.

    The teacher side is either softmax-centred (:meth:`softmax_center_teacher`, with the EMA ``center``
    buffer ``(1, K)`` of :class:`TeacherCenter`, updated by :meth:`update_center` and applied lazily at the next
    call, as in the official code) or balanced with Sinkhorn-Knopp (:meth:`sinkhorn_knopp_teacher`).

    Args:
        out_dim: number of prototypes ``K``.
        student_temp: student softmax temperature (0.1).
        center_momentum: EMA momentum of the center (0.9).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__((1, out_dim), center_momentum)
        self.student_temp = student_temp

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_output: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """``softmax((t - center) / temp)`` after applying any pending center update. ``(B, K) -> (B, K)``."""
        self.apply_center_update()
        return F.softmax((teacher_output - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self, teacher_output: torch.Tensor, teacher_temp: float, n_iterations: int = 3
    ) -> torch.Tensor:
        """Sinkhorn-Knopp assignment of the teacher logits over all ranks. ``(B, K) -> (B, K)`` (fp32)."""
        n_samples = teacher_output.shape[0] * get_world_size()
        return sinkhorn_knopp(teacher_output, teacher_temp, n_samples, n_iterations)

    def forward(
        self, student_output_list: Sequence[torch.Tensor], teacher_out_softmaxed_centered_list: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """``-sum over (student s, teacher t) pairs of mean_b sum_k t * log_softmax(s / T_s)`` (a scalar).

        Each element is ``(B, K)``; pairs are summed, not averaged (the caller divides by their number).
        """
        total_loss = 0.0
        for s in student_output_list:
            lsm = F.log_softmax(s / self.student_temp, dim=-1)
            for t in teacher_out_softmaxed_centered_list:
                total_loss = total_loss - torch.sum(t * lsm, dim=-1).mean()
        return total_loss
