"""CFG-Zero* (Fan et al. 2025): guidance with the optimised unconditional scale s*."""

from __future__ import annotations

import torch


def optimised_scale(v_cond: torch.Tensor, v_uncond: torch.Tensor, eps: float) -> torch.Tensor:
    """s* = <v_c, v_u> / (‖v_u‖² + eps) per sample. v (B, ...) -> (B, 1, ..., 1)."""
    c, u = v_cond.flatten(1), v_uncond.flatten(1)
    s = (c * u).sum(1) / (u.pow(2).sum(1) + eps)
    return s.view(-1, *([1] * (v_cond.ndim - 1)))


def cfg_zero_star(v_cond: torch.Tensor, v_uncond: torch.Tensor, omega: float, eps: float):
    """ṽ = (1 − ω)·s*·v_u + ω·v_c. -> (velocity, s* (B, 1, ..., 1))."""
    s = optimised_scale(v_cond, v_uncond, eps)
    return (1.0 - omega) * s * v_uncond + omega * v_cond, s
