"""Per-step schedules of the fusion weight α and the guidance scale ω (constant or KV-Lock's).

The variance policy reads `kvlock.hallucination`'s detector; that module imports nothing from
the engine, so imports run one way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvlock.engine.config import EditConfig
from kvlock.hallucination import HallucinationDetector


@dataclass
class StepControl:
    """What one denoising step uses: α per cached token (n_kv,), ω on the foreground (`omega`)
    and on the background (`omega_bg`; equal unless `guidance.region=fg`), and the signal."""

    alpha: torch.Tensor
    omega: float
    omega_bg: float
    sigma2: float | None = None
    active: bool = False


class ConstantPolicy:
    """Baselines: α and ω fixed for the whole edit."""

    observes = False  # the editor need not form x̂0 for it

    def __init__(self, config: EditConfig, n_kv: int, device):
        alpha = 0.0 if config.bg_kv == "none" else config.alpha
        scale = config.guidance.scale
        self.control_ = StepControl(torch.full((n_kv,), float(alpha), device=device), scale, scale)

    def control(self, step: int) -> StepControl:
        return self.control_

    def observe(self, step: int, x0_hat: torch.Tensor) -> None:
        """Constant schedules ignore the prediction."""

    @property
    def nbytes(self) -> int:
        """Nothing is kept from step to step."""
        return 0


class VariancePolicy:
    """KV-Lock schedule: α and/or ω follow the hallucination signal inside the active window.

    The active window is the last κ = round(active_last·steps) steps of the schedule and the
    variance window W = max(2, round(window·steps)) predictions (DetectorConfig): the paper's
    κ = 20, W = 10 at 50 steps (arXiv 2603.09657, "Hallucination-Aware Dynamic CFG Guidance").
    """

    observes = True  # the detector reads every step's x̂0

    def __init__(self, config: EditConfig, fg_latent: torch.Tensor, kv_index: torch.Tensor,
                 geometry, generated: torch.Tensor | None = None):
        det = config.detector
        self.config = config
        self.kv_index = kv_index
        self.detector = HallucinationDetector(det.window_steps(config.steps), det.signal, fg_latent,
                                              geometry.patch_size, generated)
        self.first_active = config.steps - det.active_steps(config.steps)
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

    def _control(self, alpha: torch.Tensor, omega: float, sigma2: float | None, active: bool):
        """`guidance.region=fg`: the background keeps the base scale ω0."""
        g = self.config.guidance
        return StepControl(alpha, omega, omega if g.region == "all" else g.scale, sigma2, active)

    def control(self, step: int) -> StepControl:
        """σ² is reported whenever the window holds 2+ predictions; it acts only in the last κ steps."""
        if not self.detector.ready:
            return self._control(self._alpha(None, None), self._omega(None), None, False)
        sigma2, per_token = self.detector.sigma2()
        if step < self.first_active:
            return self._control(self._alpha(None, None), self._omega(None), sigma2, False)
        tau = self.config.detector.tau
        ratio_tokens = per_token / tau if per_token is not None else None
        return self._control(self._alpha(sigma2 / tau, ratio_tokens), self._omega(sigma2 / tau), sigma2, True)

    def observe(self, step: int, x0_hat: torch.Tensor) -> None:
        self.detector.update(x0_hat)

    @property
    def nbytes(self) -> int:
        """Bytes kept from step to step: the detector's window and running sums."""
        return self.detector.nbytes


def build_policy(config: EditConfig, fg_latent: torch.Tensor, kv_index: torch.Tensor, geometry,
                 generated: torch.Tensor | None = None):
    """The schedule an EditConfig asks for: constant, or KV-Lock's variance-driven one.
    generated: (1, 1, F, h, w) bool, the elements the edit really generates (None = all)."""
    if config.uses_variance:
        return VariancePolicy(config, fg_latent, kv_index, geometry, generated)
    return ConstantPolicy(config, len(kv_index), kv_index.device)
