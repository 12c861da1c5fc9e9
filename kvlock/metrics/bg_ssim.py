"""Background SSIM, PIE-Bench convention: torchmetrics SSIM of the masked images."""

from __future__ import annotations

from torchmetrics.functional.image import structural_similarity_index_measure

from kvlock.metrics.base import NO_BACKGROUND, Metric, MetricInputs, MetricResult, frame_mean
from kvlock.metrics.pixels import region_pair, undefined_where_empty
from kvlock.metrics.registry import register_metric


@register_metric("bg_ssim")
class BackgroundSSIM(Metric):
    """SSIM(data_range=1, gaussian kernel 11, sigma 1.5) of edited*(1-m) vs source*(1-m) per
    frame (torchmetrics 1.9, pinned: its map cropping changed in 1.5.0); tables print x10^2.
    """

    title = "BG SSIM"
    higher_is_better = True
    scale = 1e2

    @property
    def variant(self) -> str:
        return "PIE-Bench"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        edited, source, keep = region_pair(inputs, self.settings, "background")
        ssim = structural_similarity_index_measure(
            edited * keep,
            source * keep,
            gaussian_kernel=True,
            sigma=1.5,
            kernel_size=11,
            data_range=1.0,
            reduction="none",
        )
        return frame_mean(undefined_where_empty(ssim, keep), NO_BACKGROUND)
