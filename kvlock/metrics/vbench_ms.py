"""VBench motion_smoothness: how well AMT-S predicts the dropped frames.

Reference: Vchitect/VBench vbench/motion_smoothness.py (`MotionSmoothness.motion_score`): keep
the even frames 0, 2, 4, ...; replicate-pad them to multiples of 16 (`InputPadder`), interpolate
each consecutive pair at t = 1/2 with AMT-S (`embt`, scale_factor 1, eval=True -> `imgt_pred`),
unpad, convert with `tensor2img` (x * 255, clip, truncate to uint8); compare each prediction
with the real odd frame by mean |uint8 difference| (`cv2.absdiff`, `vfi_score`);
score = (255 - mean difference) / 255; mean over videos.

VBench picks scale_factor < 1 only when a CUDA device's memory is short for the frame size
(`initialization`: never below about 4 Mpx per frame on an 80 GB GPU; never on CPU); kvlock
always runs at scale 1. With `allow_random_weights` and no `amt-s.pth`, the same network with
seeded random weights runs (recorded in the row's model).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from kvlock.metrics.amt_s import AMTS, MIN_SIDE, load_amt_s, pad_to_multiple
from kvlock.metrics.base import TOO_FEW_FRAMES, Metric, MetricInputs, MetricResult
from kvlock.metrics.frames import unit_tensor
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import (
    LoadedModel,
    WeightsUnavailable,
    fetch_hint,
    load_or_random,
    model_file,
)

WEIGHTS = "amt-s"
MODEL = "AMT-S"
TOO_SMALL = (f"not computed: frames under {MIN_SIDE} px after padding to 16 (AMT-S's coarsest "
             "correlation level is 1 px wide there and the reference network returns NaN)")


@functools.lru_cache(maxsize=2)
def load_interpolator(file: str | None, seed: int, device: torch.device) -> LoadedModel:
    """AMT-S from `file`, or with seeded random weights when `file` is None (the caller decides
    whether random weights are allowed)."""
    return load_or_random(MODEL, Path(file) if file else None,
                          lambda path: AMTS() if path is None else load_amt_s(path),
                          allow_random=True, seed=seed, device=device)


def amt_midframes(model: torch.nn.Module, frame0: torch.Tensor, frame1: torch.Tensor):
    """(N, 3, H, W) x2 in [0, 1] -> AMT-S's frames at t = 1/2, padded and unpadded as VBench."""
    padded0, crop = pad_to_multiple(frame0)
    padded1, _ = pad_to_multiple(frame1)
    return crop(model(padded0, padded1, 0.5))


def motion_smoothness(frames: np.ndarray, interpolate, device, batch_size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T_odd,) float64 per-frame (255 - mean|pred - real|) / 255 for the
    odd frames that lie between two even ones; `interpolate(f0, f1)` maps (N, 3, H, W) pairs
    in [0, 1]."""
    even = unit_tensor(frames[0::2])
    pairs = len(even) - 1
    predicted = []
    with torch.no_grad():
        for start in range(0, pairs, batch_size):
            stop = min(start + batch_size, pairs)
            out = interpolate(even[start:stop].to(device), even[start + 1 : stop + 1].to(device))
            # AMT tensor2img: (x * 255) in float32, clipped, truncated by astype(np.uint8)
            predicted.append((out.float() * 255.0).clamp(0, 255).floor().cpu())
    pred = torch.cat(predicted).double()
    real = torch.from_numpy(np.ascontiguousarray(frames[1::2][:pairs]))
    real = real.permute(0, 3, 1, 2).double()
    return (255.0 - (pred - real).abs().mean(dim=(1, 2, 3))) / 255.0


@register_metric("vbench_ms")
class VBenchMotionSmoothness(Metric):
    """(255 - mean AMT-S interpolation error on the dropped odd frames) / 255 (VBench %, x100)."""

    title = "MS"
    higher_is_better = True
    scale = 1e2

    @property
    def variant(self) -> str:
        return MODEL

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        file = model_file(WEIGHTS, s.weights_dir, not s.download_allowed)
        if file is None and not s.allow_random_weights:
            raise WeightsUnavailable(MODEL, fetch_hint(WEIGHTS))
        model = load_interpolator(str(file) if file else None, s.seed, s.torch_device)
        if inputs.num_frames < 3:
            return MetricResult.not_computed(TOO_FEW_FRAMES.replace("2", "3"), **model.provenance)
        height, width = inputs.edited.shape[1:3]
        if min(height + -height % 16, width + -width % 16) < MIN_SIDE:
            return MetricResult.not_computed(TOO_SMALL, **model.provenance)
        interpolate = functools.partial(amt_midframes, model.module)
        per_frame = motion_smoothness(inputs.edited, interpolate, s.torch_device, s.batch_size)
        # VBench averages the per-frame differences first; (255 - mean d)/255 == mean((255 - d)/255)
        return MetricResult(float(per_frame.double().mean()), [float(v) for v in per_frame],
                            **model.provenance)
