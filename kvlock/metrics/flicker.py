"""VBench temporal_flickering (weight-free): 1 - mean absolute frame difference / 255."""

from __future__ import annotations

import torch

from kvlock.metrics.base import TOO_FEW_FRAMES, Metric, MetricInputs, MetricResult, frame_mean
from kvlock.metrics.registry import register_metric


@register_metric("flicker")
class TemporalFlickering(Metric):
    """(255 - mean_t mean|I_t - I_{t+1}|) / 255 over all frames, pixels and channels (uint8
    values); per-pair values are (255 - MAE_t) / 255 and average to the score."""

    title = "Flicker"
    higher_is_better = True
    scale = 1e2

    @property
    def variant(self) -> str:
        return "VBench"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        if inputs.num_frames < 2:
            return MetricResult.not_computed(TOO_FEW_FRAMES)
        frames = torch.from_numpy(inputs.edited).float()
        mae = (frames[1:] - frames[:-1]).abs().flatten(1).mean(1)
        return frame_mean((255.0 - mae) / 255.0, TOO_FEW_FRAMES)
