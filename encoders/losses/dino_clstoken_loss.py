"""The DINO loss on cls tokens: student log-softmax against a centred, sharpened teacher distribution.

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers";
Oquab et al. 2023, "DINOv2" (``dinov2/loss/dino_clstoken_loss.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from encoders.losses.sinkhorn import sinkhorn_knopp
from encoders.train.distributed import get_world_size, is_enabled


class DINOLoss(nn.Module):
    """Cross-entropy between teacher probabilities and student log-probabilities over ``K`` prototypes.

    The teacher side is either softmax-centred (:meth:`softmax_center_teacher`, with an EMA ``center``
    buffer ``(1, K)`` updated by :meth:`update_center` and applied lazily at the next call, as in the
    official code) or balanced with Sinkhorn-Knopp (:meth:`sinkhorn_knopp_teacher`).

    The center is the mean teacher logit over all samples of all ranks (sums and counts are all-reduced),
    so N ranks with batch b behave like one rank with batch N*b.

    Args:
        out_dim: number of prototypes ``K``.
        student_temp: student softmax temperature (0.1).
        center_momentum: EMA momentum of the center (0.9).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.updated = True
        self.reduce_handle = None
        self.async_batch_center: torch.Tensor | None = None

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

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """Start the center update from this step's teacher logits ``(B, K)`` (applied at the next use)."""
        self.reduce_center_update(teacher_output)

    @torch.no_grad()
    def reduce_center_update(self, teacher_output: torch.Tensor) -> None:
        """Sum the logits and count the samples, all-reduced asynchronously across ranks."""
        self.updated = False
        flat = teacher_output.reshape(-1, teacher_output.shape[-1]).float()
        count = flat.new_full((1, 1), float(flat.shape[0]))
        self.async_batch_center = torch.cat((flat.sum(dim=0, keepdim=True), count), dim=1)  # (1, K + 1)
        if is_enabled():
            self.reduce_handle = dist.all_reduce(self.async_batch_center, async_op=True)

    @torch.no_grad()
    def apply_center_update(self) -> None:
        """``center = m * center + (1 - m) * mean teacher logit`` if an update is pending."""
        if self.updated:
            return
        if self.reduce_handle is not None:
            self.reduce_handle.wait()
            self.reduce_handle = None
        total = self.async_batch_center
        batch_center = total[:, :-1] / total[:, -1:].clamp(min=1.0)
        self.center = self.center * self.center_momentum + batch_center.to(self.center) * (1 - self.center_momentum)
        self.async_batch_center = None
        self.updated = True

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.apply_center_update()  # a checkpoint holds the center the next step will use
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, *args, **kwargs):
        self.updated, self.reduce_handle, self.async_batch_center = True, None, None
        super()._load_from_state_dict(*args, **kwargs)
