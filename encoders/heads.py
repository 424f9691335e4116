"""Projection heads for self-supervised training: the DINO / iBOT head, and SimDINO's prototype-free head.

- :class:`DINOHead`: MLP -> L2-normalised bottleneck -> weight-normalised prototypes (logits over ``K``).
- :class:`ProjectionHead`: the same MLP and normalisation without the prototype layer; its outputs are unit
  vectors compared by cosine (SimDINO).

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (DINO);
Zhou et al. 2022, "iBOT"; Oquab et al. 2023, "DINOv2" (``dinov2/layers/dino_head.py``); Wu et al. 2025,
"Simplifying DINO via Coding Rate Regularization" (SimDINO: the head without its last layer).
State-dict keys match the official head: ``mlp.{0,2,4}.{weight,bias}``, ``last_layer.weight_g``,
``last_layer.weight_v``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """A bias-free linear layer with weight normalisation, ``W = g * V / ||V||`` (norm per output row).

    Same maths and parameter names (``weight_g (out, 1)``, ``weight_v (out, in)``) as
    ``torch.nn.utils.weight_norm(nn.Linear(in, out, bias=False))``, without its deprecation warning
    and without the parametrisation machinery (plain parameters work with DDP, FSDP and ``torch.compile``).
    ``(..., in) -> (..., out)``.

    Reference: Salimans & Kingma 2016, "Weight Normalization".
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default init for the direction, unit norm ``g`` (as the official head)."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        nn.init.ones_(self.weight_g)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight ``(out, in)``."""
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """L2 normalisation over the last dim (an epsilon fp16 can represent)."""
    return F.normalize(x, dim=-1, p=2, eps=1e-6 if x.dtype == torch.float16 else 1e-12)


def _init_linear(m: nn.Module) -> None:
    """Truncated-normal (std 0.02) weights and zero biases for every ``nn.Linear`` (the official head init)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)


def _check_head_sizes(name: str, **sizes: int) -> None:
    for field, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} {field} must be >= 1, got {value}")


def _build_mlp(
    nlayers: int, in_dim: int, bottleneck_dim: int, hidden_dim: int, use_bn: bool = False, bias: bool = True
) -> nn.Module:
    if nlayers == 1:
        return nn.Linear(in_dim, bottleneck_dim, bias=bias)
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=bias)]
    if use_bn:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers.append(nn.GELU())
    for _ in range(nlayers - 2):
        layers.append(nn.Linear(hidden_dim, hidden_dim, bias=bias))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
    layers.append(nn.Linear(hidden_dim, bottleneck_dim, bias=bias))
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """MLP (``nlayers`` linears with GELU) -> L2-normalised bottleneck -> weight-normalised prototypes.

    ``(..., in_dim) -> (..., out_dim)`` logits over ``out_dim`` prototypes (65536 in DINOv2).

    Args:
        in_dim: backbone width ``D``.
        out_dim: number of prototypes ``K``.
        use_bn: BatchNorm after each hidden linear (off in DINOv2).
        nlayers: number of linear layers of the MLP (at least 1).
        hidden_dim: width of the hidden layers (2048).
        bottleneck_dim: width of the L2-normalised bottleneck (256).
        mlp_bias: biases in the MLP linears.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        use_bn: bool = False,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        mlp_bias: bool = True,
    ):
        super().__init__()
        _check_head_sizes(
            "DINOHead", in_dim=in_dim, out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim
        )
        nlayers = max(nlayers, 1)
        self.mlp = _build_mlp(nlayers, in_dim, bottleneck_dim, hidden_dim=hidden_dim, use_bn=use_bn, bias=mlp_bias)
        self.apply(_init_linear)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck, before the prototypes: ``(..., in_dim) -> (..., bottleneck_dim)``."""
        return _normalize(self.mlp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.embed(x))  # (..., K)

    @torch.no_grad()
    def mean_prototype_cosine(self) -> torch.Tensor:
        """Mean cosine between distinct prototypes (rows of the last layer), a scalar in ``[-1/(K-1), 1]``.

        1 when every prototype points the same way (the targets can only be uniform or one-hot); near 0 when
        they spread. Computed in ``O(K d)`` from the norm of the summed unit rows:
        ``(||sum_k w_k||^2 - K) / (K (K - 1))``.
        """
        w = _normalize(self.last_layer.weight_v.detach().float())  # (K, d); the direction only (g scales rows)
        k = w.shape[0]
        if k < 2:
            return w.new_ones(())
        return (w.sum(dim=0).square().sum() - k) / (k * (k - 1))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors):
        # Accept heads saved with torch.nn.utils.parametrizations.weight_norm (original0 = g, original1 = v).
        for new, old in (("weight_g", "original0"), ("weight_v", "original1")):
            key = f"{prefix}last_layer.parametrizations.weight.{old}"
            if key in state_dict:
                state_dict[f"{prefix}last_layer.{new}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors)


class ProjectionHead(nn.Module):
    """SimDINO's head: the DINO head's MLP and L2 normalisation, without the prototype layer.

    ``(..., in_dim) -> (..., bottleneck_dim)`` unit vectors; student and teacher outputs are compared by cosine
    and spread by a coding-rate term, so there are no prototypes, temperatures or centering. Keys: ``mlp.*``.

    Args:
        in_dim: backbone width ``D``.
        nlayers: linear layers of the MLP (at least 1).
        hidden_dim: width of the hidden layers.
        bottleneck_dim: output width ``d``.
        mlp_bias: biases in the MLP linears.
    """

    def __init__(
        self, in_dim: int, nlayers: int = 3, hidden_dim: int = 2048, bottleneck_dim: int = 256, mlp_bias: bool = True
    ):
        super().__init__()
        _check_head_sizes("ProjectionHead", in_dim=in_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim)
        self.mlp = _build_mlp(max(nlayers, 1), in_dim, bottleneck_dim, hidden_dim=hidden_dim, bias=mlp_bias)
        self.apply(_init_linear)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`forward` (the interface of :meth:`DINOHead.embed`)."""
        return _normalize(self.mlp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
