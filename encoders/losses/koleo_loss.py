"""The KoLeo regulariser: ``-mean log(distance to the nearest neighbour)`` of L2-normalised features.

Reference: Sablayrolles et al. 2019, "Spreading vectors for similarity search"; Oquab et al. 2023,
"DINOv2" (``dinov2/loss/koleo_loss.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    """Kozachenko-Leonenko entropy estimator on a batch ``(B, D) -> ()``; lower when features spread out.

    Computed in fp32 with autocast disabled. The nearest neighbour is searched within the given batch.
    """

    def __init__(self):
        super().__init__()
        self.pdist = nn.PairwiseDistance(2, eps=1e-8)

    def pairwise_NNs_inner(self, x: torch.Tensor) -> torch.Tensor:
        """Index of each row's nearest other row, for L2-normalised ``x`` ``(B, D) -> (B,)`` (max dot product)."""
        dots = torch.mm(x, x.t())  # (B, B)
        n = x.shape[0]
        dots.view(-1)[:: (n + 1)].fill_(-1)  # exclude self-matches (the diagonal)
        return torch.argmax(dots, dim=1)

    def forward(self, student_output: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        if student_output.shape[0] < 2:
            raise ValueError(f"KoLeoLoss needs at least 2 samples per batch, got {student_output.shape[0]}")
        with torch.autocast(device_type=student_output.device.type, enabled=False):
            x = F.normalize(student_output.float(), eps=eps, p=2, dim=-1)
            with torch.no_grad():
                indices = self.pairwise_NNs_inner(x.detach().clone())
            distances = self.pdist(x, x[indices])  # (B,)
            return -torch.log(distances + eps).mean()
