"""Oracle edit accuracy: does the edit region show the object the ground truth shows (synthetic)?"""

from __future__ import annotations

from kvlock.metrics.base import NO_EDIT_REGION, NO_GROUND_TRUTH, Metric, MetricInputs, MetricResult
from kvlock.metrics.registry import register_metric


@register_metric("oracle_edit_acc")
class OracleEditAccuracy(Metric):
    """1 when `kvlock.oracle.classify` reads the same colour and shape inside the mask of the
    edited clip as of the ground-truth target (both None for a removal: no object left), else 0;
    its mean over edits is the accuracy. Flags `oracle_edit_color_ok`, `oracle_edit_shape_ok`
    (0/1). NaN without ground truth or edit region. Assumes the synthetic world's palette and
    shapes (kvlock/oracle.py), so it is meaningful on synthetic edits only.
    """

    title = "Oracle edit acc."
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "colour+shape vs GT"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        from kvlock.oracle import classify

        if inputs.target_gt is None:
            return MetricResult.not_computed(NO_GROUND_TRUTH)
        if not inputs.mask.any():
            return MetricResult.not_computed(NO_EDIT_REGION)
        expected = classify(inputs.target_gt, inputs.mask)
        got = classify(inputs.edited, inputs.mask)
        color_ok, shape_ok = got["color"] == expected["color"], got["shape"] == expected["shape"]
        flags = {"oracle_edit_color_ok": int(color_ok), "oracle_edit_shape_ok": int(shape_ok)}
        return MetricResult(float(color_ok and shape_ok), flags=flags)
