"""CFG-Zero* (Fan et al. 2025): guidance with the optimised unconditional scale s*.

Matches WeichenFan/CFG-Zero-star models/wan/wan_pipeline.py (`optimized_scale` and the guidance
branch of `WanPipeline.__call__`), with the inner products taken over `region` when given.
"""

from __future__ import annotations

import torch


def region_sum(x: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Per-sample sum of x (B, ...) over the elements where `region` (bool, broadcastable) is True
    (all when None), in float64. -> (B,)"""
    x = x.double()
    if region is not None:
        x = torch.where(region, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x.flatten(1).sum(1)


def optimised_scale(v_cond: torch.Tensor, v_uncond: torch.Tensor, eps: float,
                    region: torch.Tensor | None = None) -> torch.Tensor:
    """s* = <v_c, v_u> / (‖v_u‖² + eps) per sample over `region`. v (B, ...) -> (B, 1, ..., 1)."""
    s = region_sum(v_cond * v_uncond, region) / (region_sum(v_uncond * v_uncond, region) + eps)
    return s.to(v_cond.dtype).view(-1, *([1] * (v_cond.ndim - 1)))


def cfg_zero_star(v_cond: torch.Tensor, v_uncond: torch.Tensor, omega, eps: float,
                  region: torch.Tensor | None = None):
    """ṽ = (1 − ω)·s*·v_u + ω·v_c; ω a float or a tensor broadcastable to v.
    -> (velocity, s* (B, 1, ..., 1))."""
    s = optimised_scale(v_cond, v_uncond, eps, region)
    return (1.0 - omega) * s * v_uncond + omega * v_cond, s
