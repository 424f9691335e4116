"""Sinkhorn-Knopp normalisation of teacher logits into a balanced soft assignment, in the log domain.

Reference: Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments" (SwAV); Oquab et al. 2023, "DINOv2" (``sinkhorn_knopp_teacher``).
"""

from __future__ import annotations

import math

import torch

from encoders.train.distributed import all_reduce_max_, all_reduce_sum_


def _logsumexp_across_ranks(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``logsumexp`` along ``dim`` of a tensor whose ``dim`` is split over ranks (keepdim). Max-shifted."""
    m = all_reduce_max_(x.amax(dim=dim, keepdim=True))
    s = all_reduce_sum_(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return m + torch.log(s)


@torch.no_grad()
def sinkhorn_knopp(
    teacher_output: torch.Tensor,
    teacher_temp: float,
    n_samples: int | float | torch.Tensor,
    n_iterations: int = 3,
) -> torch.Tensor:
    """Balanced assignment of samples to prototypes. ``(B_local, K) -> (B_local, K)``, rows sum to 1.

    Same result as the official iteration (``Q = exp(logits / temp)``; repeat ``n_iterations`` times:
    each prototype row sums to ``1/K`` over *all ranks' samples*, each sample column sums to ``1/B``;
    finally scale columns to 1), but computed on ``log Q`` with max-shifted ``logsumexp``, so logits of
    any magnitude (``~1e4`` / temperature 0.04) give no overflow, no ``0/0`` and no NaN.

    Args:
        teacher_output: logits of this rank's samples ``(B_local, K)`` (any float dtype; computed in fp32).
        teacher_temp: temperature dividing the logits.
        n_samples: total number of samples ``B`` over all ranks (a python number or a 0-d/1-element tensor).
        n_iterations: Sinkhorn iterations.
    """
    log_q = (teacher_output.float() / teacher_temp).t()  # (K, B_local)
    k = log_q.shape[0]
    if torch.is_tensor(n_samples):
        log_b = torch.log(n_samples.to(device=log_q.device, dtype=torch.float32).reshape(()))
    else:
        log_b = torch.tensor(math.log(float(n_samples)), device=log_q.device)
    log_k = math.log(k)
    for _ in range(n_iterations):
        # each prototype (row) gets total weight 1/K; its samples live on every rank
        log_q = log_q - _logsumexp_across_ranks(log_q, dim=1) - log_k
        # each sample (column) gets total weight 1/B
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - log_b
    return torch.exp(log_q + log_b).t()  # columns sum to 1: an assignment per sample
