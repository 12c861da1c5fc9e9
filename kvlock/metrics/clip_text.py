"""CLIP text alignment of the edited frames with the target prompt (torchmetrics CLIPScore)."""

from __future__ import annotations

import numpy as np
import torch

from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric


def clip_score(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(N, D) normalised images x (D,) normalised text -> (N,) max(100 * cos, 0) (CLIPScore)."""
    return (100.0 * image_features @ text_features).clamp(min=0)


@register_metric("clip_text")
class ClipTextScore(Metric):
    """CLIP score of every `frame_stride`-th edited frame with the target prompt, mean over
    frames; model `clip_model`/`clip_pretrained` (default ViT-L-14-quickgelu/openai)."""

    title = "CLIP-T"
    higher_is_better = True
    empty_reason = "undefined: no evaluated frame"

    def __init__(self, settings: MetricSettings):
        super().__init__(settings)
        check_clip_model(settings.clip_model)

    @property
    def variant(self) -> str:
        return self.settings.clip_model

    def images(self, inputs: MetricInputs, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images to score, (N, H, W, 3) uint8, and which of them are defined, (N,) bool."""
        return inputs.edited[idx], np.ones(len(idx), bool)

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip = clip_for(self.settings)
        images, defined = self.images(
            inputs, strided(inputs.num_frames, self.settings.frame_stride)
        )
        score = torch.full((len(images),), torch.nan, dtype=torch.float64)
        if defined.any():
            text = clip.encode_texts([self.settings.prompt(inputs.target_prompt)])[0]
            score[torch.from_numpy(defined)] = clip_score(
                clip.encode_frames(images[defined]), text
            ).double()
        return frame_mean(score, self.empty_reason, **clip.loaded.provenance)
