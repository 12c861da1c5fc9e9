"""CLIP frame consistency of the edited video, variant `consecutive` or `all_pairs`."""

from __future__ import annotations

from kvlock.metrics.base import (
    TOO_FEW_FRAMES,
    Metric,
    MetricInputs,
    MetricResult,
    MetricSettings,
    frame_mean,
)
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.consistency import all_pairs_similarity, consecutive_similarity
from kvlock.metrics.registry import register_metric

VARIANTS = {"consecutive": consecutive_similarity, "all_pairs": all_pairs_similarity}


@register_metric("clip_frame_consistency")
class ClipFrameConsistency(Metric):
    """`consecutive`: mean_t max(0, cos(f_{t-1}, f_t)) (FateZero/Rerender Tem-Con);
    `all_pairs`: mean off-diagonal cos (Tune-A-Video / LOVEU). All frames, CLIP `clip_model`."""

    title = "CLIP-TC"
    higher_is_better = True
    scale = 1e2

    def __init__(self, settings: MetricSettings, variant: str = "consecutive"):
        super().__init__(settings)
        check_clip_model(settings.clip_model)
        if variant not in VARIANTS:
            raise ValueError(
                f"Unknown clip_frame_consistency variant '{variant}'. Available: {', '.join(VARIANTS)}"
            )
        self._variant = variant

    @property
    def variant(self) -> str:
        return self._variant

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip = clip_for(self.settings)
        if inputs.num_frames < 2:
            return MetricResult.not_computed(TOO_FEW_FRAMES, **clip.loaded.provenance)
        features = clip.encode_frames(inputs.edited)
        return frame_mean(
            VARIANTS[self._variant](features), TOO_FEW_FRAMES, **clip.loaded.provenance
        )
