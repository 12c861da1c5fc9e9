"""Adaptive projected guidance (Sadat et al. 2024, arXiv 2410.02416), on denoised predictions.

The paper's Algorithm 1 (`normalized_guidance`, `project`, `MomentumBuffer`; also diffusers'
guiders/adaptive_projected_guidance.py) acts on the denoiser output D(x, σ) = x̂0, not on ε or v:
the norm threshold r bounds ‖ΔD‖ in data space. The engine converts velocities to x̂0 and back.
"""

from __future__ import annotations

import torch

from baselines.cfg_zero_star import region_sum


def per_sample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) in like's dtype."""
    return x.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class APG:
    """D = D_c + (ω − 1)·(ΔD⊥ + η·ΔD∥) with ΔD = D_c − D_u after momentum (ΔD ← ΔD + β·ΔD_prev)
    and rescaling to norm ≤ r; ∥ and ⊥ are taken with respect to D_c. Norms and projections are
    per sample over `region` (all elements when None). Stateful (momentum): one instance per edit."""

    def __init__(self, eta: float = 0.0, norm_threshold: float = 0.0, momentum: float = 0.0):
        self.eta, self.norm_threshold, self.momentum = eta, norm_threshold, momentum
        self.running: torch.Tensor | None = None

    def __call__(self, d_cond: torch.Tensor, d_uncond: torch.Tensor, omega,
                 region: torch.Tensor | None = None) -> torch.Tensor:
        """d_cond, d_uncond (B, ...) x̂0 predictions; ω a float or broadcastable tensor."""
        diff = d_cond - d_uncond
        if self.momentum:
            self.running = diff if self.running is None else diff + self.momentum * self.running
            diff = self.running
        if self.norm_threshold > 0:
            norm = region_sum(diff * diff, region).sqrt()
            diff = diff * per_sample(torch.clamp(self.norm_threshold / norm, max=1.0), diff)
        cond_norm = region_sum(d_cond * d_cond, region).sqrt()
        unit = d_cond / per_sample(cond_norm.clamp_min(1e-12), d_cond)
        parallel = per_sample(region_sum(diff * unit, region), diff) * unit
        return d_cond + (omega - 1.0) * (diff - parallel + self.eta * parallel)
