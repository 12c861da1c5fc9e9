"""Frame-array helpers: resizing, frame stride, uint8 arrays -> float tensors."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def resize_video(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, h, w, C) uint8 -> (T, H, W, C) uint8 with size = (H, W), INTER_AREA per frame."""
    height, width = size
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def strided(num_frames: int, stride: int) -> np.ndarray:
    """Indices of the evaluated frames: 0, stride, 2*stride, ... (FiVE-Bench uses stride 8)."""
    return np.arange(0, num_frames, stride)


def unit_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
        / 255.0
    )


def mask_tensor(mask: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W) bool -> (N, 1, H, W) float32 (1 = edit region)."""
    return torch.from_numpy(np.ascontiguousarray(mask)).to(device)[:, None].float()
