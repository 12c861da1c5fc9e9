"""Masked pixel comparisons shared by the background and ground-truth metrics (PIE-Bench rules)."""

from __future__ import annotations

import math

import torch

from kvlock.metrics.base import MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.frames import mask_tensor, strided, unit_tensor


def region_pair(
    inputs: MetricInputs, settings: MetricSettings, region: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The evaluated frames (every `frame_stride`-th) as (edited, reference, keep).

    region "background": reference = source, keep = 1 - mask;
    region "edit": reference = target_gt, keep = mask.
    edited, reference: (N, 3, H, W) float in [0, 1]; keep: (N, 1, H, W) float 0/1.
    """
    idx = strided(inputs.num_frames, settings.frame_stride)
    device = settings.torch_device
    mask = mask_tensor(inputs.mask[idx], device)
    if region == "background":
        reference, keep = inputs.source, 1.0 - mask
    elif region == "edit":
        reference, keep = inputs.target_gt, mask
    else:
        raise ValueError(f"region must be 'background' or 'edit', got {region!r}")
    return unit_tensor(inputs.edited[idx], device), unit_tensor(reference[idx], device), keep


def undefined_where_empty(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(N,) per-frame values with NaN where the frame keeps no pixel."""
    return torch.where(keep.flatten(1).sum(1) > 0, values, math.nan)


def region_mse(edited: torch.Tensor, reference: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(N,) MSE over the kept pixels only (all 3 channels); NaN where nothing is kept."""
    squared = (keep * (edited - reference) ** 2).flatten(1).sum(1)
    return squared / (3.0 * keep.flatten(1).sum(1))


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for data range 1; inf where mse == 0."""
    return 10.0 * torch.log10(1.0 / mse)


def cap_psnr(psnr: torch.Tensor, cap: float) -> tuple[torch.Tensor, int]:
    """Clamp PSNR values above `cap` (incl. inf, identical images) to `cap`; returns the count."""
    over = psnr > cap
    return torch.where(over, torch.full_like(psnr, cap), psnr), int(over.sum())


def region_psnr(
    inputs: MetricInputs, settings: MetricSettings, region: str, empty_reason: str, flag: str
) -> MetricResult:
    """Per-frame PSNR from the MSE over the kept pixels only, capped; `flag` counts capped frames."""
    edited, reference, keep = region_pair(inputs, settings, region)
    psnr, capped = cap_psnr(psnr_from_mse(region_mse(edited, reference, keep)), settings.psnr_cap)
    return frame_mean(psnr, empty_reason, flags={flag: capped})
