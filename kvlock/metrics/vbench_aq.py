"""VBench aesthetic_quality: the LAION aesthetic linear head on CLIP ViT-L/14 image embeddings.

Reference: Vchitect/VBench vbench/aesthetic_quality.py (`laion_aesthetic`): `clip_transform(224)`
on every frame, L2-normalised `encode_image`, `nn.Linear(768, 1)` from LAION-AI/aesthetic-predictor
`sa_0_4_vit_l_14_linear.pth`, score / 10, mean over frames, then mean over videos.
"""

from __future__ import annotations

from kvlock.metrics.aesthetic_heads import CLIPHeadMetric, head_scores
from kvlock.metrics.base import MetricInputs, MetricResult
from kvlock.metrics.registry import register_metric
from kvlock.metrics.vbench_bc import vbench_clip_pixels


@register_metric("vbench_aq")
class VBenchAestheticQuality(CLIPHeadMetric):
    """Mean over all edited frames of LAION-aesthetic(CLIP(frame)) / 10 (VBench %, x100)."""

    title = "AQ"
    higher_is_better = True
    scale = 1e2
    head_kind, weights, head_label = "linear", "laion-aesthetic-linear", "LAION aesthetic head"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip, head = self.clip_and_head()
        features = clip.encode_pixels(vbench_clip_pixels(inputs.edited, clip.image_size))
        return self.mean_of(head_scores(head, features, self.settings.torch_device) / 10, clip, head)
