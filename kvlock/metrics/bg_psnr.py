"""Background PSNR, PIE-Bench convention: torchmetrics PSNR over the whole masked image."""

from __future__ import annotations

from torchmetrics.functional.image import peak_signal_noise_ratio

from kvlock.metrics.base import NO_BACKGROUND, Metric, MetricInputs, MetricResult, frame_mean
from kvlock.metrics.pixels import cap_psnr, region_pair, undefined_where_empty
from kvlock.metrics.registry import register_metric


@register_metric("bg_psnr")
class BackgroundPSNR(Metric):
    """Edited and source frames both times (1 - mask), PSNR(data_range=1) over all 3*H*W values,
    so edit-region pixels count as zero error (PIE-Bench). Values above `psnr_cap` (identical
    backgrounds give inf) are capped; `bg_psnr_capped` counts the capped frames.
    """

    title = "BG PSNR"
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "PIE-Bench"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        edited, source, keep = region_pair(inputs, self.settings, "background")
        psnr = peak_signal_noise_ratio(
            edited * keep, source * keep, data_range=1.0, reduction="none", dim=(1, 2, 3)
        )
        psnr, capped = cap_psnr(undefined_where_empty(psnr, keep), self.settings.psnr_cap)
        return frame_mean(psnr, NO_BACKGROUND, flags={f"{self.name}_capped": capped})
