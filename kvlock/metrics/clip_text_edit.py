"""CLIP text alignment of the edited region only (frame * mask, background blackened)."""

from __future__ import annotations

import numpy as np

from kvlock.metrics.base import NO_EDIT_REGION, MetricInputs
from kvlock.metrics.clip_text import ClipTextScore
from kvlock.metrics.registry import register_metric


@register_metric("clip_text_edit")
class ClipTextEditScore(ClipTextScore):
    """CLIP score of edited*mask with the target prompt; frames with an empty mask are skipped."""

    title = "CLIP-T edit"
    empty_reason = NO_EDIT_REGION

    def images(self, inputs: MetricInputs, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = inputs.mask[idx]
        return inputs.edited[idx] * mask[..., None].astype(np.uint8), mask.any(axis=(1, 2))
