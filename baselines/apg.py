"""Adaptive projected guidance (Sadat et al. 2024), applied to velocities."""

from __future__ import annotations

import torch


class APG:
    """v = v_c + (ω − 1)·(Δ⊥ + η·Δ∥) with Δ = v_c − v_u (momentum and norm threshold optional),
    Δ∥ the projection of Δ on v_c. Stateful: one instance per edit."""

    def __init__(self, eta: float = 0.0, norm_threshold: float = 0.0, momentum: float = 0.0):
        self.eta, self.norm_threshold, self.momentum = eta, norm_threshold, momentum
        self.running: torch.Tensor | None = None

    def __call__(self, v_cond: torch.Tensor, v_uncond: torch.Tensor, omega: float) -> torch.Tensor:
        diff = v_cond - v_uncond
        if self.momentum:
            self.running = diff if self.running is None else diff + self.momentum * self.running
            diff = self.running
        if self.norm_threshold > 0:
            norm = diff.flatten(1).norm(dim=1).view(-1, *([1] * (diff.ndim - 1)))
            diff = diff * torch.clamp(self.norm_threshold / (norm + 1e-12), max=1.0)
        c, d = v_cond.flatten(1), diff.flatten(1)
        unit = c / (c.norm(dim=1, keepdim=True) + 1e-12)
        parallel = ((d * unit).sum(1, keepdim=True) * unit).view_as(diff)
        return v_cond + (omega - 1.0) * (diff - parallel + self.eta * parallel)
