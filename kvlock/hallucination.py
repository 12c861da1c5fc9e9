"""KV-Lock's hallucination signal and the α / ω schedules it drives.

σ²_k = sample variance of the predicted clean latent x̂0 over the last W steps, averaged over
foreground elements ("fg", default), all elements ("global" ablation) or per token ("token":
token-level locking). Active only in the last κ steps. α_k = clamp(σ²_k/τ, 0, 1);
ω_k = ω0·clamp(σ²_k/τ, 0, b) ("literal") or ω0·(1 + γ·clamp(σ²_k/τ, 0, b)) ("boost").
"""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F

from kvlock.engine.config import EditConfig
from kvlock.engine.policy import StepControl


class HallucinationDetector:
    """Sliding-window sample variance of x̂0 (B, C, F, h, w)."""

    def __init__(self, window: int, signal: str, fg_latent: torch.Tensor, patch_size):
        """fg_latent: (1, 1, F, h, w) bool foreground on the latent grid."""
        self.history: deque[torch.Tensor] = deque(maxlen=window)
        self.signal = signal
        self.fg = fg_latent
        self.patch_size = tuple(patch_size)

    def update(self, x0_hat: torch.Tensor) -> None:
        self.history.append(x0_hat.detach().float())

    @property
    def ready(self) -> bool:
        return len(self.history) >= 2

    def elementwise_variance(self) -> torch.Tensor:
        """(B, C, F, h, w) unbiased variance over the window."""
        return torch.stack(tuple(self.history)).var(dim=0, unbiased=True)

    def fg_sigma2(self, var: torch.Tensor) -> float:
        fg = self.fg.expand_as(var)
        return float(var[fg].mean()) if fg.any() else float(var.mean())

    def sigma2(self) -> tuple[float, torch.Tensor | None]:
        """-> (scalar σ² that drives ω, per-token σ² (N,) for token-level locking or None)."""
        var = self.elementwise_variance()
        if self.signal == "global":
            return float(var.mean()), None
        if self.signal == "token":
            per_token = F.avg_pool3d(var.mean(1, keepdim=True), self.patch_size, self.patch_size)
            return self.fg_sigma2(var), per_token.flatten()
        return self.fg_sigma2(var), None


class VariancePolicy:
    """KV-Lock schedule: α and/or ω follow the hallucination signal inside the active window."""

    def __init__(self, config: EditConfig, fg_latent: torch.Tensor, kv_index: torch.Tensor,
                 geometry, start_step: int):
        det = config.detector
        self.config = config
        self.kv_index = kv_index
        self.detector = HallucinationDetector(det.window, det.signal, fg_latent, geometry.patch_size)
        self.first_active = config.steps - det.active_last
        self.n_kv = len(kv_index)

    def _alpha(self, ratio_scalar: float | None, ratio_tokens: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        if cfg.bg_kv == "none":
            return torch.zeros(self.n_kv, device=self.kv_index.device)
        if cfg.bg_kv == "const":
            return torch.full((self.n_kv,), float(cfg.alpha), device=self.kv_index.device)
        if ratio_tokens is not None:
            return ratio_tokens[self.kv_index].clamp(0.0, 1.0)
        value = cfg.detector.inactive_alpha if ratio_scalar is None else min(max(ratio_scalar, 0.0), 1.0)
        return torch.full((self.n_kv,), float(value), device=self.kv_index.device)

    def _omega(self, ratio: float | None) -> float:
        g = self.config.guidance
        if g.omega_rule == "constant" or ratio is None:
            return g.scale
        clamped = min(max(ratio, 0.0), g.omega_max_ratio)
        if g.omega_rule == "literal":
            return g.scale * clamped
        return g.scale * (1.0 + g.boost_gamma * clamped)

    def control(self, step: int) -> StepControl:
        """σ² is reported whenever the window holds 2+ predictions; it acts only in the last κ steps."""
        if not self.detector.ready:
            return StepControl(self._alpha(None, None), self._omega(None), None, False)
        sigma2, per_token = self.detector.sigma2()
        if step < self.first_active:
            return StepControl(self._alpha(None, None), self._omega(None), sigma2, False)
        tau = self.config.detector.tau
        ratio_tokens = per_token / tau if per_token is not None else None
        return StepControl(self._alpha(sigma2 / tau, ratio_tokens), self._omega(sigma2 / tau), sigma2, True)

    def observe(self, step: int, x0_hat: torch.Tensor) -> None:
        self.detector.update(x0_hat)
