"""LAION improved aesthetic predictor (the "AS" column of KV-Edit's table).

Reference: christophschuhmann/improved-aesthetic-predictor simple_inference.py: CLIP ViT-L/14
(OpenAI) `preprocess` + `encode_image`, L2-normalised, `MLP` head from
`sac+logos+ava1-l14-linearMSE.pth`; the raw score (about 1-10) per image. Video: mean over every
`frame_stride`-th edited frame.
"""

from __future__ import annotations

from kvlock.metrics.aesthetic_heads import head_scores, load_head
from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.clip_model import check_clip_model, clip_for
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import WeightsUnavailable, fetch_hint, model_file

WEIGHTS = "laion-improved-aesthetic"


@register_metric("laion_aes")
class LaionAesthetic(Metric):
    """Mean improved-aesthetic-predictor score of the edited frames (OpenAI CLIP preprocessing)."""

    title = "AS"
    higher_is_better = True

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
        file = model_file(WEIGHTS, s.weights_dir, not s.download_allowed)
        if file is None and not s.allow_random_weights:
            raise WeightsUnavailable("LAION improved aesthetic predictor", fetch_hint(WEIGHTS))
        dim = int(clip.loaded.module.visual.output_dim)
        head = load_head("mlp", dim, str(file) if file else None, seed=s.seed,
                         device=s.torch_device)
        frames = inputs.edited[strided(inputs.num_frames, s.frame_stride)]
        scores = head_scores(head, clip.encode_frames(frames), s.torch_device)
        return frame_mean(
            scores,
            "undefined: no frames",
            model=f"{clip.description} + {head.description}",
            random_weights=clip.loaded.random_weights or head.random_weights,
        )
