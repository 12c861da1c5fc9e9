"""Flow-matching time grid: t from 1 (noise) to 0 (data), with Wan's timestep shift."""

from __future__ import annotations

import torch


def flow_timesteps(steps: int, shift: float) -> torch.Tensor:
    """(steps + 1,) descending times t_0 = 1 > ... > t_steps = 0, shifted as s·t / (1 + (s-1)·t)."""
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * t / (1.0 + (shift - 1.0) * t)).float()
