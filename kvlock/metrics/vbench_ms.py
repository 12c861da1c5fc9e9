"""VBench motion_smoothness: how well a frame interpolator predicts the dropped frames.

Reference: Vchitect/VBench vbench/motion_smoothness.py (`MotionSmoothness.motion_score`): keep
the even frames 0, 2, 4, ...; interpolate each consecutive pair at t = 1/2 with AMT-S; compare
each prediction with the real odd frame by mean |uint8 difference| (`cv2.absdiff`, `vfi_score`);
score = (255 - mean difference) / 255; mean over videos.

The AMT-S network itself is not implemented here: with its weights present the column is not
computed and says so. With `allow_random_weights` a seeded random convolutional interpolator
stands in (recorded in the row's model); the procedure around it is VBench's.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kvlock.metrics.base import TOO_FEW_FRAMES, Metric, MetricInputs, MetricResult
from kvlock.metrics.frames import unit_tensor
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import (
    LoadedModel,
    WeightsUnavailable,
    fetch_hint,
    load_or_random,
    present_file,
)

WEIGHTS = "amt-s"
AMT_MISSING = "not computed: the AMT-S network is not implemented in kvlock (weights present)"


class RandomInterpolator(nn.Module):
    """Stand-in interpolator: (N, 3, H, W) x2 in [0, 1] -> (N, 3, H, W), the average of the two
    frames plus a small convolutional residual (random weights only)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)
        )

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        middle = (frame0 + frame1) / 2
        return (middle + 0.1 * torch.tanh(self.net(torch.cat([frame0, frame1], 1)))).clamp(0, 1)


@functools.lru_cache(maxsize=1)
def load_stand_in(seed: int, device: torch.device) -> LoadedModel:
    return load_or_random("conv interpolator standing in for AMT-S", None,
                          lambda _: RandomInterpolator(), allow_random=True, seed=seed,
                          device=device)


def motion_smoothness(frames: np.ndarray, interpolate, device, batch_size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T_odd,) per-frame (255 - mean|pred - real|) / 255 for the odd frames
    that lie between two even ones; `interpolate(f0, f1)` maps (N, 3, H, W) pairs in [0, 1]."""
    even = unit_tensor(frames[0::2])
    pairs = len(even) - 1
    predicted = []
    with torch.no_grad():
        for start in range(0, pairs, batch_size):
            stop = min(start + batch_size, pairs)
            out = interpolate(even[start:stop].to(device), even[start + 1 : stop + 1].to(device))
            predicted.append(out.float().cpu())
    # AMT tensor2img: (x * 255) rounded to uint8
    pred = (torch.cat(predicted) * 255).round().clamp(0, 255)
    real = torch.from_numpy(np.ascontiguousarray(frames[1::2][:pairs])).permute(0, 3, 1, 2).float()
    return (255.0 - (pred - real).abs().mean(dim=(1, 2, 3))) / 255.0


@register_metric("vbench_ms")
class VBenchMotionSmoothness(Metric):
    """(255 - mean interpolation error on the dropped odd frames) / 255 (VBench %, x100)."""

    title = "MS"
    higher_is_better = True
    scale = 1e2

    @property
    def variant(self) -> str:
        return "AMT-S"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        file = present_file(WEIGHTS, s.weights_dir)  # not downloaded: nothing could use it
        if file is not None:
            return MetricResult.not_computed(f"{AMT_MISSING}: {Path(file).name}")
        if not s.allow_random_weights:
            raise WeightsUnavailable("AMT-S", fetch_hint(WEIGHTS))
        model = load_stand_in(s.seed, s.torch_device)
        if inputs.num_frames < 3:
            return MetricResult.not_computed(TOO_FEW_FRAMES.replace("2", "3"), **model.provenance)
        per_frame = motion_smoothness(inputs.edited, model.module, s.torch_device, s.batch_size)
        # VBench averages the per-frame differences first; (255 - mean d)/255 == mean((255 - d)/255)
        return MetricResult(float(per_frame.double().mean()), [float(v) for v in per_frame],
                            **model.provenance)
