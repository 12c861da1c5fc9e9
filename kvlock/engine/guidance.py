"""Guidance rules combining the conditional and unconditional velocities of one step.

`cfg` lives here; the CFG-Zero* and APG formulas are the baselines' code (`baselines/`). Every
reduction (s*, APG's norms and projections) runs over the elements the edit really generates.
With the background pasted from the source every step that is the foreground: KV-Edit
(Xilluill/KV-Edit flux/sampling.py `denoise_kv`, models/kv_edit.py `Flux_kv_edit.denoise`)
only ever carries the masked tokens through the sampler and re-pastes the inversion latent
there, so the background's velocities are never part of the result (its Flux backbone is
guidance-distilled: no CFG reduction to copy). A full-token run then reduces over the same
numbers as a fg-only run, and fg-only stays a pure speed-up. Without pasting it is every
element, as in CFG-Zero*'s `optimized_scale` over the whole flattened latent.
"""

from __future__ import annotations

import torch

from baselines.apg import APG
from baselines.cfg_zero_star import cfg_zero_star
from kvlock.engine.config import GuidanceConfig


class Guidance:
    """One edit's guidance.

    __call__(x (B, C, F, h, w), t, v_cond, v_uncond, omega_fg, omega_bg, step) -> (v, s* or None).
    fg_latent, generated: (1, 1, F, h, w) bool, the foreground (where ω_fg applies; ω_bg
    elsewhere) and the generated elements (reductions; None = all).
    """

    def __init__(self, cfg: GuidanceConfig, fg_latent: torch.Tensor, generated: torch.Tensor | None):
        self.cfg = cfg
        self.fg = fg_latent
        self.generated = generated
        self.apg = APG(cfg.apg_eta, cfg.apg_norm_threshold, cfg.apg_momentum)

    def omega_map(self, omega_fg: float, omega_bg: float):
        """ω per element: a float when both regions share it, else a (1, 1, F, h, w) tensor."""
        if omega_fg == omega_bg:
            return omega_fg
        return torch.where(self.fg, torch.tensor(omega_fg), torch.tensor(omega_bg)).float()

    def __call__(self, x: torch.Tensor, t: torch.Tensor, v_cond: torch.Tensor,
                 v_uncond: torch.Tensor | None, omega_fg: float, omega_bg: float, step: int):
        rule = self.cfg.rule
        if rule == "none":
            return v_cond, None
        omega = self.omega_map(omega_fg, omega_bg)
        if rule == "cfg":
            return v_uncond + omega * (v_cond - v_uncond), None
        if rule == "apg":
            # APG acts on x̂0 (Sadat et al. 2024, Algorithm 1 on the denoiser output): flow
            # matching x_t = (1 − t)·x0 + t·ε gives x̂0 = x_t − t·v and back v = (x_t − x̂0)/t.
            d_guided = self.apg(x - t * v_cond, x - t * v_uncond, omega, self.generated)
            return (x - d_guided) / t, None
        v, s = cfg_zero_star(v_cond, v_uncond, omega, self.cfg.eps, self.generated)
        # Zero-init (WeichenFan/CFG-Zero-star models/wan/wan_pipeline.py, `WanPipeline.__call__`:
        # `if (i <= zero_steps) and use_zero_init` zeroes the guided velocity; Wan T2V uses
        # zero_steps=1, i.e. the first 2 steps). Our knob counts steps: zero_init_steps = zero_steps + 1.
        if step < self.cfg.zero_init_steps:
            v = torch.zeros_like(v)
        return v, float(s.mean())
