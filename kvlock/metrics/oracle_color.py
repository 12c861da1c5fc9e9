"""Oracle colour accuracy: does the edit region show the ground truth's colour (synthetic)?"""

from __future__ import annotations

from kvlock.metrics.base import NO_EDIT_REGION, NO_GROUND_TRUTH, Metric, MetricInputs, MetricResult
from kvlock.metrics.registry import register_metric


@register_metric("oracle_color_acc")
class OracleColorAccuracy(Metric):
    """1 when `kvlock.oracle.classify` reads the same colour inside the mask of the edited clip as
    of the ground-truth target (None for both when no object is left), else 0; its mean over edits
    is the accuracy. The shape is not scored: the trained toy model (kvlock/assets/wan_toy.md)
    binds colour words but not shape words, so its edits are judged on what it can do
    (`oracle_edit_acc` scores colour and shape together). Synthetic edits only.
    """

    title = "Oracle colour acc."
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "shape not scored"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        from kvlock.oracle import classify

        if inputs.target_gt is None:
            return MetricResult.not_computed(NO_GROUND_TRUTH)
        if not inputs.mask.any():
            return MetricResult.not_computed(NO_EDIT_REGION)
        expected = classify(inputs.target_gt, inputs.mask)["color"]
        return MetricResult(float(classify(inputs.edited, inputs.mask)["color"] == expected))
