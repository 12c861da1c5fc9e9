"""CLIP directional similarity (InstructPix2Pix): does the image change follow the text change?"""

from __future__ import annotations

import torch.nn.functional as F

from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.cache import shared_cache
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric

SAME_PROMPTS = "undefined: source and target prompts are identical"


@register_metric("clip_dir")
class ClipDirectionalSimilarity(Metric):
    """cos(f(I_edit) - f(I_src), f(T_target) - f(T_source)) per evaluated frame (every
    `frame_stride`-th), normalised CLIP features, mean over frames. Source-frame features come
    from the source-feature cache."""

    title = "CLIP-Dir"
    higher_is_better = True

    def __init__(self, settings: MetricSettings):
        super().__init__(settings)
        check_clip_model(settings.clip_model)

    @property
    def variant(self) -> str:
        return self.settings.clip_model

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip = clip_for(self.settings)
        source_prompt = self.settings.prompt(inputs.source_prompt)
        target_prompt = self.settings.prompt(inputs.target_prompt)
        if source_prompt.strip() == target_prompt.strip():
            return MetricResult.not_computed(SAME_PROMPTS, **clip.loaded.provenance)
        idx = strided(inputs.num_frames, self.settings.frame_stride)
        key = (
            f"{inputs.source_key}|clip_frames|{clip.description}|stride{self.settings.frame_stride}"
        )
        cache = shared_cache(self.settings.cache_dir, self.settings.cache_size)
        source = cache.get_or_compute(
            key, lambda: {"features": clip.encode_frames(inputs.source[idx])}
        )["features"]
        edited = clip.encode_frames(inputs.edited[idx])
        text_source, text_target = clip.encode_texts([source_prompt, target_prompt])
        direction = F.cosine_similarity(edited - source, (text_target - text_source)[None], dim=-1)
        return frame_mean(direction, SAME_PROMPTS, **clip.loaded.provenance)
