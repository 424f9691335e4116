"""Self-supervised losses of DINOv2, with the official class and method names.

- :class:`DINOLoss`: cross-entropy between teacher and student cls-token prototype distributions.
- :class:`iBOTPatchLoss`: the same on masked patch tokens (masked image modelling).
- :class:`KoLeoLoss`: the Kozachenko-Leonenko entropy regulariser that spreads features in a batch.
- :class:`SimDINOLoss`, :func:`masked_patch_alignment`: SimDINO's prototype-free objective (cosine alignment and a
  coding-rate term), and its masked-patch alignment (SimDINOv2).

Cross-rank reductions (centers, Sinkhorn-Knopp statistics) happen only when a process group exists.
"""

from encoders.losses.dino_clstoken_loss import DINOLoss
from encoders.losses.ibot_patch_loss import iBOTPatchLoss
from encoders.losses.koleo_loss import KoLeoLoss
from encoders.losses.simdino_loss import SimDINOLoss, coding_rate, masked_patch_alignment
from encoders.losses.sinkhorn import sinkhorn_knopp

__all__ = [
    "DINOLoss",
    "KoLeoLoss",
    "SimDINOLoss",
    "coding_rate",
    "iBOTPatchLoss",
    "masked_patch_alignment",
    "sinkhorn_knopp",
]
