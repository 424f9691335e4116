"""The EMA center of the teacher's logits, shared by the DINO and iBOT losses (softmax centering).

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (Eq. 4); Oquab et al.
2023, "DINOv2" (``dinov2/loss/dino_clstoken_loss.py``, ``ibot_patch_loss.py``, which each carry a copy of it).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from encoders.train.distributed import is_enabled


class TeacherCenter(nn.Module):
    """An EMA ``center`` buffer of shape ``center_shape`` (``(1, K)`` or ``(1, 1, K)``) of the mean teacher logit.

    :meth:`update_center` starts the update from a step's logits: their sum and count, all-reduced
    asynchronously across ranks (so N ranks with batch b behave like one rank with batch N*b);
    :meth:`apply_center_update` folds it in at the next use, ``center = m * center + (1 - m) * mean``, as the
    official code does. A checkpoint holds the center the next step will use.

    Args:
        center_shape: the buffer's shape; its last dimension is the number of prototypes ``K``.
        center_momentum: EMA momentum ``m`` (0.9).
    """

    def __init__(self, center_shape: tuple[int, ...], center_momentum: float = 0.9):
        super().__init__()
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(*center_shape))
        self.updated = True
        self.reduce_handle = None
        self.async_batch_center: torch.Tensor | None = None

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """Start the center update from this step's teacher logits ``(..., K)`` (applied at the next use)."""
        self.reduce_center_update(teacher_output)

    @torch.no_grad()
    def reduce_center_update(self, teacher_output: torch.Tensor) -> None:
        """Sum the logits and count the rows, all-reduced asynchronously across ranks."""
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
        batch_center = (total[:, :-1] / total[:, -1:].clamp(min=1.0)).reshape(self.center.shape)
        self.center = self.center * self.center_momentum + batch_center.to(self.center) * (1 - self.center_momentum)
        self.async_batch_center = None
        self.updated = True

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.apply_center_update()  # a checkpoint holds the center the next step will use
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, *args, **kwargs):
        self.updated, self.reduce_handle, self.async_batch_center = True, None, None
        super()._load_from_state_dict(*args, **kwargs)


__all__ = ["TeacherCenter"]
