"""Edit-region LPIPS against the ground-truth target clip (synthetic edits)."""

from __future__ import annotations

from kvlock.metrics.base import NO_EDIT_REGION, NO_GROUND_TRUTH, Metric, MetricInputs, MetricResult
from kvlock.metrics.lpips_model import masked_lpips
from kvlock.metrics.registry import register_metric


@register_metric("fg_lpips_gt")
class EditRegionLPIPS(Metric):
    """lpips(2*edited*m - 1, 2*target_gt*m - 1) per frame (background blackened in both, the
    PIE-Bench masking turned around); net from `lpips_net`. NaN without ground truth.
    """

    title = "FG LPIPS vs GT"
    higher_is_better = False
    scale = 1e3

    @property
    def variant(self) -> str:
        return self.settings.lpips_net

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        if inputs.target_gt is None:
            return MetricResult.not_computed(NO_GROUND_TRUTH)
        return masked_lpips(inputs, self.settings, "edit", NO_EDIT_REGION)
