"""Per-step schedules of the fusion weight α and the guidance scale ω."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvlock.engine.config import EditConfig


@dataclass
class StepControl:
    """What one denoising step uses: α per cached token (n_kv,), ω, and the signal that set them."""

    alpha: torch.Tensor
    omega: float
    sigma2: float | None = None
    active: bool = False


class ConstantPolicy:
    """Baselines: α and ω fixed for the whole edit."""

    def __init__(self, config: EditConfig, n_kv: int, device):
        alpha = 0.0 if config.bg_kv == "none" else config.alpha
        self.control_ = StepControl(torch.full((n_kv,), float(alpha), device=device), config.guidance.scale)

    def control(self, step: int) -> StepControl:
        return self.control_

    def observe(self, step: int, x0_hat: torch.Tensor) -> None:
        """Constant schedules ignore the prediction."""


def build_policy(config: EditConfig, fg_latent: torch.Tensor, kv_index: torch.Tensor, geometry,
                 start_step: int):
    """The schedule an EditConfig asks for: constant, or KV-Lock's variance-driven one."""
    if config.uses_variance:
        from kvlock.hallucination import VariancePolicy

        return VariancePolicy(config, fg_latent, kv_index, geometry, start_step)
    return ConstantPolicy(config, len(kv_index), kv_index.device)
