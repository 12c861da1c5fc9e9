"""Edit-region PSNR against the ground-truth target clip (synthetic edits)."""

from __future__ import annotations

from kvlock.metrics.base import NO_EDIT_REGION, NO_GROUND_TRUTH, Metric, MetricInputs, MetricResult
from kvlock.metrics.pixels import region_psnr
from kvlock.metrics.registry import register_metric


@register_metric("fg_psnr_gt")
class EditRegionPSNR(Metric):
    """PSNR(data_range=1) from the MSE over the mask pixels only, edited vs target_gt; capped at
    `psnr_cap` like the background PSNR (`fg_psnr_gt_capped`). NaN without ground truth.
    """

    title = "FG PSNR vs GT"
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "mask pixels"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        flag = f"{self.name}_capped"
        if inputs.target_gt is None:
            return MetricResult.not_computed(NO_GROUND_TRUTH, flags={flag: 0})
        return region_psnr(inputs, self.settings, "edit", NO_EDIT_REGION, flag)
