"""VBench imaging_quality: MUSIQ trained on SPAQ (pyiqa's implementation, as VBench uses it).

Reference: Vchitect/VBench vbench/imaging_quality.py: `MUSIQ(pretrained_model_path=
musiq_spaq_ckpt-358bb6af.pth)` in eval mode; `transform(images, 'longer')`: when the longer side
exceeds 512, resize to (int(s*h), int(s*w)) with s = 512 / longer side (bilinear,
antialias=False), then /255; mean of the per-frame scores over all frames; VBench reports
score / 100. pyiqa is an optional dependency (`make metric-deps`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

from kvlock.metrics.base import Metric, MetricInputs, MetricResult, frame_mean
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import (
    LoadedModel,
    WeightsUnavailable,
    fetch_hint,
    load_or_random,
    model_file,
)

WEIGHTS = "musiq-spaq"
INSTALL = "make metric-deps (pip install --no-deps pyiqa==0.1.16)"
LONGER_SIDE = 512


def vbench_iq_pixels(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, h, w) in [0, 1], longer side at most 512 (VBench 'longer')."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # uint8, as VBench
    height, width = x.shape[-2:]
    if max(height, width) > LONGER_SIDE:
        s = LONGER_SIDE / max(height, width)
        x = TF.resize(x, [int(s * height), int(s * width)], antialias=False)
    return x.float() / 255.0


@functools.lru_cache(maxsize=1)
def load_musiq(file: str | None, *, seed: int, device: torch.device) -> LoadedModel:
    """pyiqa MUSIQ (SPAQ head, 1 output) from `file`, or seeded random when None."""
    from pyiqa.archs.musiq_arch import MUSIQ

    def build(checkpoint: Path | None) -> torch.nn.Module:
        if checkpoint is None:
            return MUSIQ(num_class=1, pretrained=False)
        return MUSIQ(num_class=1, pretrained_model_path=str(checkpoint))

    return load_or_random("MUSIQ-SPAQ (pyiqa)", Path(file) if file else None, build,
                          allow_random=True, seed=seed, device=device)


@register_metric("vbench_iq")
class VBenchImagingQuality(Metric):
    """Mean MUSIQ-SPAQ score / 100 over all edited frames (VBench %, x100)."""

    title = "IQ"
    higher_is_better = True
    scale = 1e2

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        try:
            import pyiqa.archs.musiq_arch  # noqa: F401
        except ImportError as err:
            return MetricResult.not_computed(f"not computed: pyiqa not installed ({err}); run {INSTALL}")
        file = model_file(WEIGHTS, s.weights_dir, not s.download_allowed)
        if file is None and not s.allow_random_weights:
            raise WeightsUnavailable("MUSIQ-SPAQ", fetch_hint(WEIGHTS))
        model = load_musiq(str(file) if file else None, seed=s.seed, device=s.torch_device)
        pixels = vbench_iq_pixels(inputs.edited)
        with torch.no_grad():
            scores = torch.stack(
                [model.module(frame[None].to(s.torch_device)).reshape(()) for frame in pixels]
            )
        return frame_mean(scores.float().cpu() / 100, "undefined: no frames", **model.provenance)
