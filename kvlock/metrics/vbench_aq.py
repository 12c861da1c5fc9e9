"""VBench aesthetic_quality: the LAION aesthetic linear head on CLIP ViT-L/14 image embeddings.

Reference: Vchitect/VBench vbench/aesthetic_quality.py (`laion_aesthetic`): `clip_transform(224)`
on every frame, L2-normalised `encode_image`, `nn.Linear(768, 1)` from LAION-AI/aesthetic-predictor
`sa_0_4_vit_l_14_linear.pth`, score / 10, mean over frames, then mean over videos.
"""

from __future__ import annotations

from kvlock.metrics.aesthetic_heads import head_scores, load_head
from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.registry import register_metric
from kvlock.metrics.vbench_bc import vbench_clip_pixels
from kvlock.metrics.weights import WeightsUnavailable, fetch_hint, model_file

NO_FRAMES = "undefined: no frames"


@register_metric("vbench_aq")
class VBenchAestheticQuality(Metric):
    """Mean over all edited frames of LAION-aesthetic(CLIP(frame)) / 10 (VBench %, x100)."""

    title = "AQ"
    higher_is_better = True
    scale = 1e2

    def __init__(
        self,
        settings: MetricSettings,
        model: str = "ViT-L-14-quickgelu",
        pretrained: str | None = "openai",
    ):
        super().__init__(settings)
        check_clip_model(model)
        self.model, self.pretrained = model, pretrained

    @property
    def variant(self) -> str:
        return self.model

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        clip = clip_for(s, self.model, self.pretrained)
        file = model_file("laion-aesthetic-linear", s.weights_dir, not s.download_allowed)
        if file is None and not s.allow_random_weights:
            raise WeightsUnavailable("LAION aesthetic head", fetch_hint("laion-aesthetic-linear"))
        dim = int(clip.loaded.module.visual.output_dim)
        head = load_head("linear", dim, str(file) if file else None, seed=s.seed,
                         device=s.torch_device)
        features = clip.encode_pixels(vbench_clip_pixels(inputs.edited, clip.image_size))
        scores = head_scores(head, features, s.torch_device) / 10
        return frame_mean(
            scores,
            NO_FRAMES,
            model=f"{clip.description} + {head.description}",
            random_weights=clip.loaded.random_weights or head.random_weights,
        )
