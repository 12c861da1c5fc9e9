"""VBench background_consistency: CLIP ViT-B/32 features of consecutive and first frames."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from kvlock.metrics.base import (
    TOO_FEW_FRAMES,
    MetricInputs,
    MetricResult,
    frame_mean,
)
from kvlock.metrics.clip_model import NamedClipMetric, clip_for
from kvlock.metrics.consistency import pair_count, vbench_similarity
from kvlock.metrics.registry import register_metric


def vbench_clip_pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    """VBench `clip_transform`: (T, H, W, 3) uint8 -> (T, 3, size, size): bicubic resize of the
    short side of the uint8 frames (antialias=False, as current VBench), centre crop, /255, OpenAI CLIP mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    x = TF.center_crop(
        TF.resize(x, [size], interpolation=TF.InterpolationMode.BICUBIC, antialias=False), [size]
    )  # on uint8, as VBench (torchvision rounds and clamps the result back to uint8)
    return TF.normalize(x.float() / 255.0, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)


@register_metric("vbench_bc")
class VBenchBackgroundConsistency(NamedClipMetric):
    """Mean over frames i >= 1 of (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2 on the
    whole edited frames; open_clip `model`/`pretrained` (default ViT-B-32/openai, as VBench)."""

    title = "BC"
    higher_is_better = True
    scale = 1e2
    default_model = "ViT-B-32"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        clip = clip_for(self.settings, self.model, self.pretrained)
        if inputs.num_frames < 2:
            return MetricResult.not_computed(TOO_FEW_FRAMES, **clip.loaded.provenance)
        features = clip.encode_pixels(vbench_clip_pixels(inputs.edited, clip.image_size))
        return frame_mean(
            vbench_similarity(features),
            TOO_FEW_FRAMES,
            flags=pair_count(self.name, inputs.num_frames),
            **clip.loaded.provenance,
        )
