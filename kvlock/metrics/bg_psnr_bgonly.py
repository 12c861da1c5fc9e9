"""Background PSNR over background pixels only (the mean squared error ignores the edit region)."""

from __future__ import annotations

from kvlock.metrics.base import NO_BACKGROUND, Metric, MetricInputs, MetricResult
from kvlock.metrics.pixels import region_psnr
from kvlock.metrics.registry import register_metric


@register_metric("bg_psnr_bgonly")
class BackgroundOnlyPSNR(Metric):
    """PSNR(data_range=1) from the MSE over the (1 - mask) pixels, all channels; a true
    background PSNR, lower than `bg_psnr` whenever the mask is non-empty. Capped like `bg_psnr`
    (`bg_psnr_bgonly_capped`).
    """

    title = "BG PSNR"
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "bg pixels"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        return region_psnr(
            inputs, self.settings, "background", NO_BACKGROUND, f"{self.name}_capped"
        )
