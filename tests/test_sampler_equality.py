"""With KV control off, the engine's generation loop is diffusers' WanPipeline sampler: the same
initial noise gives the same latents and frames (FlowMatchEulerDiscreteScheduler, same shift/steps)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.sampler_check import pipeline_equivalence
from kvlock.engine.timesteps import flow_timesteps

STEPS, SHIFT = 6, 3.0


def test_diffusers_grid_is_the_scheduler_grid():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(STEPS)
    assert torch.equal(flow_timesteps(STEPS, SHIFT, "diffusers"), scheduler.sigmas)
    with pytest.raises(ValueError, match="method.timestep_grid='unipc'"):
        flow_timesteps(STEPS, SHIFT, "unipc")


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_generation_loop_equals_wan_pipeline(tmp_path, scale):
    result = pipeline_equivalence(tmp_path, STEPS, SHIFT, scale)
    assert result["max_abs"] <= 1e-4, result
    assert result["frames_max_lsb"] <= 1, result
    # The check can fail: the engine's default (linear) grid is another sampler.
    assert result["linear_grid_max_abs"] > 1e-3, result
