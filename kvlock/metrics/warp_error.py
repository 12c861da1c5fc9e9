"""Warping error (Lai et al. 2018) of the edited video along the SOURCE video's optical flow."""

from __future__ import annotations

import torch

from kvlock.metrics.base import (
    FLOW_ESTIMATORS,
    TOO_FEW_FRAMES,
    Metric,
    MetricInputs,
    MetricResult,
    frame_mean,
)
from kvlock.metrics.cache import shared_cache
from kvlock.metrics.flow import estimator_id, raft_model, source_motion, warp
from kvlock.metrics.frames import unit_tensor
from kvlock.metrics.registry import register_metric


@register_metric("warp_error")
class WarpError(Metric):
    """E_t = sum M_t (O_t - warp(O_{t+1}, F_t))^2 / sum M_t over pixels and the 3 RGB channels
    in [0, 1] (M = non-occluded mask of the source flow F, broadcast to the channels; a pair with
    every pixel occluded scores 0, as in the reference code), mean over t. Values are comparable
    only for the same flow estimator (`flow`, in the label). Source flow comes from the cache."""

    title = "WarpErr"
    higher_is_better = False

    @property
    def variant(self) -> str:
        return FLOW_ESTIMATORS[self.settings.flow]

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        if inputs.num_frames < 2:
            return MetricResult.not_computed(TOO_FEW_FRAMES)
        s = self.settings
        estimator = estimator_id(s)
        cache = shared_cache(s.cache_dir, s.cache_size)
        motion = cache.get_or_compute(
            f"{inputs.source_key}|flow|{estimator}", lambda: source_motion(inputs.source, s)
        )
        edited = unit_tensor(inputs.edited)
        keep = motion["valid"][:, None].float().expand(-1, 3, -1, -1)
        squared = (keep * (edited[:-1] - warp(edited[1:], motion["flow"])) ** 2).flatten(1).sum(1)
        count = keep.flatten(1).sum(1)
        error = squared / torch.where(count > 0, count, float(keep[0].numel()))
        provenance = raft_model(s).provenance if s.flow == "raft" else {}
        return frame_mean(error, TOO_FEW_FRAMES, **provenance)
