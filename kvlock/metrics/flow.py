"""Optical flow of the source video, forward-backward occlusion check and flow warping.

Flow convention (OpenCV, torchvision RAFT): flow (H, W, 2) = (dx, dy) with a(x) ~ b(x + flow(x))
for flow(a, b). Estimators: OpenCV DIS (preset medium) and Farneback are weight-free; RAFT
(torchvision raft_large) needs its checkpoint in the torch hub cache (catalog entry `raft-large`,
fetched on first use unless offline).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.optical_flow import raft_large

from kvlock.metrics.base import MetricSettings
from kvlock.metrics.weights import (
    LoadedModel,
    fetch_hint,
    load_or_random,
    load_state_dict,
    model_file,
)

RAFT_WEIGHTS = "raft-large"  # torchvision Raft_Large_Weights.DEFAULT (C_T_SKHT_V2)

FARNEBACK = dict(
    pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
)


def estimator_id(settings: MetricSettings) -> str:
    """What produced the flow (a cache-key part): estimator, parameters, weights."""
    if settings.flow == "dis":
        return f"opencv-{cv2.__version__}-dis-medium"
    if settings.flow == "farneback":
        return f"opencv-{cv2.__version__}-farneback-" + "-".join(f"{v}" for v in FARNEBACK.values())
    return raft_model(settings).description


def flow_pairs(frames: np.ndarray, settings: MetricSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, H, W, 3) uint8 -> forward flows t->t+1 and backward flows t+1->t, each (T-1, H, W, 2)."""
    if settings.flow == "raft":
        return _raft_pairs(frames, settings)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    if settings.flow == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        estimate = functools.partial(dis.calc, flow=None)
    else:
        estimate = functools.partial(cv2.calcOpticalFlowFarneback, flow=None, **FARNEBACK)
    forward = [estimate(a, b) for a, b in zip(gray[:-1], gray[1:])]
    backward = [estimate(b, a) for a, b in zip(gray[:-1], gray[1:])]
    return torch.from_numpy(np.stack(forward)), torch.from_numpy(np.stack(backward))


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images sampled at x + flow(x), flow (N, H, W, 2): bilinear with sample points
    clamped to the image (as FlowNet2's Resample2d used by Lai et al.); written as nested lerps,
    so a constant image warps to exactly itself."""
    _, _, height, width = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device),
        torch.arange(width, device=flow.device),
        indexing="ij",
    )
    x = (xs + flow[..., 0]).clamp(0, width - 1)
    y = (ys + flow[..., 1]).clamp(0, height - 1)
    x0, y0 = x.floor(), y.floor()
    wx, wy = (x - x0)[:, None].to(images.dtype), (y - y0)[:, None].to(images.dtype)
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    a, b = _gather(images, y0, x0), _gather(images, y0, x1)
    c, d = _gather(images, y1, x0), _gather(images, y1, x1)
    top, bottom = a + wx * (b - a), c + wx * (d - c)
    return top + wy * (bottom - top)


def _gather(images: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """images (N, C, H, W) at integer pixels y, x (N, H', W') -> (N, C, H', W')."""
    n, c, _, width = images.shape
    index = (y * width + x).flatten(1)[:, None].expand(-1, c, -1)
    return images.flatten(2).gather(2, index).view(n, c, *y.shape[1:])


def occlusion(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool, occluded pixels of frame t (Lai et al. 2018 / Ruder et al. 2016).

    forward (N, H, W, 2): t -> t+1; backward: t+1 -> t. With B~(x) = backward(x + forward(x)):
    occluded where |forward + B~|^2 > 0.01 (|forward|^2 + |B~|^2) + 0.5, or on a motion boundary
    |grad forward|^2 > 0.01 |forward|^2 + 0.002 (forward differences, 0 at the last row/column).
    """
    warped = warp(backward.permute(0, 3, 1, 2), forward).permute(0, 2, 3, 1)
    inconsistent = (forward + warped).pow(2).sum(-1) > 0.01 * (
        forward.pow(2).sum(-1) + warped.pow(2).sum(-1)
    ) + 0.5
    du = torch.zeros_like(forward)
    dv = torch.zeros_like(forward)
    du[:, :, :-1] = forward[:, :, :-1] - forward[:, :, 1:]
    dv[:, :-1] = forward[:, :-1] - forward[:, 1:]
    boundary = (du.pow(2) + dv.pow(2)).sum(-1) > 0.01 * forward.pow(2).sum(-1) + 0.002
    return inconsistent | boundary


def source_motion(frames: np.ndarray, settings: MetricSettings) -> dict[str, torch.Tensor]:
    """{"flow": (T-1, H, W, 2) forward flow, "valid": (T-1, H, W) bool non-occluded} of a clip."""
    forward, backward = flow_pairs(frames, settings)
    return {"flow": forward, "valid": ~occlusion(forward, backward)}


def raft_model(settings: MetricSettings) -> LoadedModel:
    """torchvision raft_large from the hub cache (memoised); raises WeightsUnavailable."""
    return _load_raft(**settings.loader_kwargs)


@functools.lru_cache(maxsize=1)
def _load_raft(
    *, allow_random: bool, seed: int, weights_dir: str | None, device: torch.device, offline: bool
) -> LoadedModel:
    return load_or_random(
        "torchvision raft_large",
        model_file(RAFT_WEIGHTS, weights_dir, offline),
        _raft_large,
        allow_random=allow_random,
        seed=seed,
        device=device,
        fetch_command=fetch_hint(RAFT_WEIGHTS),
    )


def _raft_large(checkpoint: Path | None) -> torch.nn.Module:
    model = raft_large(weights=None)
    if checkpoint is not None:
        model.load_state_dict(load_state_dict(checkpoint))
    return model


@torch.no_grad()
def _raft_pairs(frames: np.ndarray, settings: MetricSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """RAFT on frames in [-1, 1], replicate-padded to multiples of 8 and at least 128x128 (its
    correlation pyramid needs 16x16 feature maps), flows cropped back."""
    model = raft_model(settings)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    height, width = x.shape[-2:]
    pad_h, pad_w = max(128, -(-height // 8) * 8) - height, max(128, -(-width // 8) * 8) - width
    x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate").to(settings.torch_device)
    flows = []
    for a, b in ((x[:-1], x[1:]), (x[1:], x[:-1])):
        out = [
            model.module(p, q)[-1]
            for p, q in zip(a.split(settings.batch_size), b.split(settings.batch_size))
        ]
        flows.append(torch.cat(out)[:, :, :height, :width].permute(0, 2, 3, 1).cpu())
    return flows[0], flows[1]
