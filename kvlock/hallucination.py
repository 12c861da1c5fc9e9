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
    """Sliding-window sample variance of x̂0 (B, C, F, h, w), kept as running sums (O(1) per step).

    Only the elements the signal reads are kept: the foreground elements for "fg", all of them
    for "global" and "token".
    """

    def __init__(self, window: int, signal: str, fg_latent: torch.Tensor, patch_size):
        """fg_latent: (1, 1, F, h, w) bool foreground on the latent grid."""
        self.window = window
        self.history: deque[torch.Tensor] = deque()
        self.signal = signal
        self.fg = fg_latent
        self.patch_size = tuple(patch_size)
        self.sum = self.sum_sq = None
        self.shape = None

    def select(self, x0_hat: torch.Tensor) -> torch.Tensor:
        """The elements this signal watches, in float64 (running sums must not drift)."""
        x = x0_hat.detach().double()
        if self.signal == "fg" and self.fg.any():
            return x[self.fg.expand_as(x)]
        return x

    def update(self, x0_hat: torch.Tensor) -> None:
        x = self.select(x0_hat)
        self.shape = x0_hat.shape
        if self.sum is None:
            self.sum, self.sum_sq = torch.zeros_like(x), torch.zeros_like(x)
        self.history.append(x)
        self.sum += x
        self.sum_sq += x * x
        if len(self.history) > self.window:
            old = self.history.popleft()
            self.sum -= old
            self.sum_sq -= old * old

    @property
    def ready(self) -> bool:
        return len(self.history) >= 2

    def variance(self) -> torch.Tensor:
        """Unbiased variance over the window of each watched element."""
        n = len(self.history)
        return ((self.sum_sq - self.sum * self.sum / n) / (n - 1)).clamp_min(0.0)

    def sigma2(self) -> tuple[float, torch.Tensor | None]:
        """-> (scalar σ² that drives ω, per-token σ² (N,) for token-level locking or None)."""
        var = self.variance()
        if self.signal != "token":
            return float(var.mean()), None
        var = var.view(self.shape).float()
        fg = self.fg.expand_as(var)
        scalar = float(var[fg].mean()) if fg.any() else float(var.mean())
        per_token = F.avg_pool3d(var.mean(1, keepdim=True), self.patch_size, self.patch_size)
        return scalar, per_token.flatten()


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
