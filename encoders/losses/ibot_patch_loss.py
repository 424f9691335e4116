"""The iBOT loss: DINO-style cross-entropy on the patch tokens that were masked in the student's input.

Reference: Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer"; Oquab et al. 2023,
"DINOv2" (``dinov2/loss/ibot_patch_loss.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from encoders.losses.sinkhorn import sinkhorn_knopp
from encoders.losses.teacher_center import TeacherCenter
from encoders.train.distributed import all_reduce_sum_


def _cross_entropy(t: torch.Tensor, s: torch.Tensor, temp: float) -> torch.Tensor:
    """``sum_k t * log_softmax(s / temp)`` over the last dim (positive log-likelihood, not negated)."""
    return torch.sum(t * F.log_softmax(s / temp, dim=-1), dim=-1)


class iBOTPatchLoss(TeacherCenter):
    """Masked-patch cross-entropy with a centred (or Sinkhorn-Knopp) teacher.

    The center buffer ``(1, 1, K)`` (:class:`TeacherCenter`) is the EMA of the mean teacher patch logit; sums
    and token counts are all-reduced, so the center is the mean over every masked patch of every rank.

    Args:
        patch_out_dim: number of prototypes ``K`` of the (iBOT or shared DINO) head.
        student_temp: student softmax temperature (0.1).
        center_momentum: EMA momentum of the center (0.9).
    """

    def __init__(self, patch_out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__((1, 1, patch_out_dim), center_momentum)
        self.student_temp = student_temp

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_patch_tokens: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """``softmax((t - center) / temp)`` after applying any pending center update. ``(..., K) -> (..., K)``."""
        self.apply_center_update()
        return F.softmax((teacher_patch_tokens - self.center.to(teacher_patch_tokens.device)) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self,
        teacher_output: torch.Tensor,
        teacher_temp: float,
        n_masked_patches_tensor: torch.Tensor,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Sinkhorn-Knopp assignment of the masked teacher patch logits ``(M, K) -> (M, K)`` over all ranks.

        ``n_masked_patches_tensor`` ``(1,)`` is this rank's number of masked patches; it is summed over
        ranks (on a copy: the caller's tensor is left unchanged).
        """
        total = all_reduce_sum_(n_masked_patches_tensor.detach().to(teacher_output.device).float().clone())
        return sinkhorn_knopp(teacher_output, teacher_temp, total, n_iterations)

    def forward(
        self,
        student_patch_tokens: torch.Tensor,
        teacher_patch_tokens: torch.Tensor,
        student_masks_flat: torch.Tensor,
    ) -> torch.Tensor:
        """Dense form: logits ``(B, N, K)`` for every patch, ``student_masks_flat`` ``(B, N)`` bool.

        Per image, the mean cross-entropy over its masked patches; then the mean over images, negated.
        """
        loss = _cross_entropy(teacher_patch_tokens, student_patch_tokens, self.student_temp)  # (B, N)
        masks = student_masks_flat.float()
        loss = torch.sum(loss * masks, dim=-1) / masks.sum(dim=-1).clamp(min=1.0)
        return -loss.mean()

    def forward_masked(
        self,
        student_patch_tokens_masked: torch.Tensor,
        teacher_patch_tokens_masked: torch.Tensor,
        student_masks_flat: torch.Tensor,
        n_masked_patches: int | None = None,
        masks_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Packed form: logits ``(M, K)`` of the ``M`` masked patches only (in ``mask_indices_list`` order).

        Each patch is weighted by ``masks_weight`` ``(M,)`` = 1 / (masked patches of its image), the sum
        is divided by the number of images ``B`` of ``student_masks_flat`` ``(B, N)``: the same value as
        :meth:`forward`, without computing unmasked patches.
        """
        loss = _cross_entropy(teacher_patch_tokens_masked, student_patch_tokens_masked, self.student_temp)
        if masks_weight is None:
            masks_weight = (
                (1 / student_masks_flat.sum(-1).clamp(min=1.0))
                .unsqueeze(-1)
                .expand_as(student_masks_flat)[student_masks_flat]
            )
        if n_masked_patches is not None:
            loss = loss[:n_masked_patches]
        loss = loss * masks_weight
        return -loss.sum() / student_masks_flat.shape[0]
