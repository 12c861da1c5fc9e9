"""HPS v2.1 (Human Preference Score): open_clip ViT-H-14 fine-tuned on human preferences.

Reference: tgxs002/HPSv2 hpsv2/img_score.py (`score`): open_clip `ViT-H-14` with the
`HPS_v2.1_compressed.pt` state dict, open_clip's inference preprocessing (224, bicubic, OpenAI
mean/std), score = image_features . text_features of the L2-normalised features (the
diagonal of `logits_per_image` without the logit scale). Video: mean over every `frame_stride`-th
edited frame; tables print x100.
"""

from __future__ import annotations

import torch

from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import WeightsUnavailable, fetch_hint, model_file

WEIGHTS = "hps-v2.1"
HPS_ARCH = "ViT-H-14"


@register_metric("hpsv2")
class HPSv2(Metric):
    """HPS v2.1 of the edited frames with the target prompt. `model` is the architecture the
    checkpoint loads into (ViT-H-14); another name only serves as a random-weight stand-in."""

    title = "HPS"
    higher_is_better = True
    scale = 1e2

    def __init__(self, settings: MetricSettings, model: str = HPS_ARCH):
        super().__init__(settings)
        check_clip_model(model)
        self.model = model

    @property
    def variant(self) -> str:
        return "v2.1"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        file = model_file(WEIGHTS, s.weights_dir, not s.download_allowed)
        if file is None or self.model != HPS_ARCH:
            if not s.allow_random_weights:
                raise WeightsUnavailable("HPS v2.1", fetch_hint(WEIGHTS))
            file = None
        clip = clip_for(s, self.model, str(file) if file else None)
        frames = inputs.edited[strided(inputs.num_frames, s.frame_stride)]
        text = clip.encode_texts([s.prompt(inputs.target_prompt)])[0]
        scores = clip.encode_frames(frames) @ text
        description = f"HPS v2.1 ({clip.description})" if file else clip.description
        return frame_mean(
            scores.to(torch.float64), "undefined: no frames",
            model=description, random_weights=clip.loaded.random_weights,
        )
