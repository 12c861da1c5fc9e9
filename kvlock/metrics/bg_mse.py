"""Background MSE, PIE-Bench convention: mean over all 3*H*W values of the masked images."""

from __future__ import annotations

from kvlock.metrics.base import NO_BACKGROUND, Metric, MetricInputs, MetricResult, frame_mean
from kvlock.metrics.pixels import region_pair, undefined_where_empty
from kvlock.metrics.registry import register_metric


@register_metric("bg_mse")
class BackgroundMSE(Metric):
    """mean((edited*(1-m) - source*(1-m))^2) per frame, images in [0, 1]; tables print x10^4."""

    title = "BG MSE"
    higher_is_better = False
    scale = 1e4

    @property
    def variant(self) -> str:
        return "PIE-Bench"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        edited, source, keep = region_pair(inputs, self.settings, "background")
        mse = ((edited - source) * keep).pow(2).flatten(1).mean(1)
        return frame_mean(undefined_where_empty(mse, keep), NO_BACKGROUND)
