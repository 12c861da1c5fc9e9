"""Flow-matching time grids: t from 1 (noise) to 0 (data), with Wan's timestep shift."""

from __future__ import annotations

import torch

from kvlock.engine.config import TIMESTEP_GRIDS


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1.0 + (shift - 1.0) * t)


def flow_timesteps(steps: int, shift: float, grid: str = "linear",
                   num_train_timesteps: int = 1000) -> torch.Tensor:
    """(steps + 1,) float32 descending times t_0 = 1 > ... > t_steps = 0.

    "linear": shift(linspace(1, 0, steps + 1)).
    "diffusers": the grid of diffusers' FlowMatchEulerDiscreteScheduler (no dynamic shifting) that
    WanPipeline samples on, matched to `__init__` and `set_timesteps` of
    diffusers/schedulers/scheduling_flow_match_euler_discrete.py: the smallest training sigma
    shift(1/T) (float32) is the last inference time, the `steps` times are shift(linspace(1,
    that, steps)) in float64, then float32, then a final 0.
    """
    if grid == "linear":
        return shifted(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()
    if grid == "diffusers":
        sigma_min = float(shifted(torch.tensor(1.0, dtype=torch.float32) / num_train_timesteps, shift))
        sigma_max = float(shifted(torch.tensor(1.0, dtype=torch.float32), shift))
        t = torch.linspace(sigma_max * num_train_timesteps, sigma_min * num_train_timesteps, steps,
                           dtype=torch.float64) / num_train_timesteps
        return torch.cat([shifted(t, shift).float(), torch.zeros(1)])
    raise ValueError(f"method.timestep_grid={grid!r} is not one of {', '.join(TIMESTEP_GRIDS)}")
