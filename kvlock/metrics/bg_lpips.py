"""Background LPIPS, PIE-Bench convention: lpips of the masked images mapped to [-1, 1]."""

from __future__ import annotations

from kvlock.metrics.base import NO_BACKGROUND, Metric, MetricInputs, MetricResult
from kvlock.metrics.lpips_model import masked_lpips
from kvlock.metrics.registry import register_metric


@register_metric("bg_lpips")
class BackgroundLPIPS(Metric):
    """lpips(2*edited*(1-m) - 1, 2*source*(1-m) - 1) per frame; net `squeeze` (PIE-Bench) or
    `alex` / `vgg` via `lpips_net`; tables print x10^3.
    """

    title = "BG LPIPS"
    higher_is_better = False
    scale = 1e3

    @property
    def variant(self) -> str:
        return self.settings.lpips_net

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        return masked_lpips(inputs, self.settings, "background", NO_BACKGROUND)
