"""Guidance rules combining the conditional and unconditional velocities of one step.

`cfg` lives here; the CFG-Zero* and APG rules are the baselines' code (`baselines/`).
"""

from __future__ import annotations

import torch

from baselines.apg import APG
from baselines.cfg_zero_star import cfg_zero_star
from kvlock.engine.config import GuidanceConfig


class Guidance:
    """One edit's guidance. __call__(v_cond, v_uncond (B, C, F, h, w), omega, step) -> (v, s* or None)."""

    def __init__(self, cfg: GuidanceConfig):
        self.cfg = cfg
        self.apg = APG(cfg.apg_eta, cfg.apg_norm_threshold, cfg.apg_momentum)

    def __call__(self, v_cond: torch.Tensor, v_uncond: torch.Tensor | None, omega: float, step: int):
        rule = self.cfg.rule
        if rule == "none":
            return v_cond, None
        if rule == "cfg":
            return v_uncond + omega * (v_cond - v_uncond), None
        if rule == "apg":
            return self.apg(v_cond, v_uncond, omega), None
        v, s = cfg_zero_star(v_cond, v_uncond, omega, self.cfg.eps)
        if step < self.cfg.zero_init_steps:
            v = torch.zeros_like(v)
        return v, float(s.mean())
