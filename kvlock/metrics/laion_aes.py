"""LAION improved aesthetic predictor (the "AS" column of KV-Edit's table).

Reference: christophschuhmann/improved-aesthetic-predictor simple_inference.py: CLIP ViT-L/14
(OpenAI) `preprocess` + `encode_image`, L2-normalised, `MLP` head from
`sac+logos+ava1-l14-linearMSE.pth`; the raw score (about 1-10) per image. Video: mean over every
`frame_stride`-th edited frame.
"""

from __future__ import annotations

from kvlock.metrics.aesthetic_heads import CLIPHeadMetric, head_scores
from kvlock.metrics.base import MetricInputs, MetricResult
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric


@register_metric("laion_aes")
class LaionAesthetic(CLIPHeadMetric):
    """Mean improved-aesthetic-predictor score of the edited frames (OpenAI CLIP preprocessing)."""

    title = "AS"
    higher_is_better = True
    head_kind, weights, head_label = "mlp", "laion-improved-aesthetic", "LAION improved aesthetic predictor"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip, head = self.clip_and_head()
        frames = inputs.edited[strided(inputs.num_frames, self.settings.frame_stride)]
        return self.mean_of(head_scores(head, clip.encode_frames(frames), self.settings.torch_device),
                            clip, head)
