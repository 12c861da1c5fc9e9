"""Temporal-consistency formulas over per-frame features (rows L2-normalised, shape (T, D))."""

from __future__ import annotations

import torch


def consecutive_similarity(features: torch.Tensor) -> torch.Tensor:
    """(T-1,) max(0, cos(f_{t-1}, f_t)): FateZero / Rerender "Tem-Con"."""
    return (features[1:] * features[:-1]).sum(-1).clamp(min=0)


def all_pairs_similarity(features: torch.Tensor) -> torch.Tensor:
    """(T,) mean cos of each frame to every other frame; their mean is the mean off-diagonal
    cosine (Tune-A-Video / LOVEU-TGVE frame consistency)."""
    sim = features @ features.T
    return (sim.sum(1) - sim.diagonal()) / (len(features) - 1)


def vbench_similarity(features: torch.Tensor) -> torch.Tensor:
    """(T-1,) VBench subject/background consistency per frame i >= 1:
    s_i = (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2."""
    previous = (features[1:] * features[:-1]).sum(-1).clamp(min=0)
    first = (features[1:] * features[:1]).sum(-1).clamp(min=0)
    return (previous + first) / 2


def pair_count(name: str, num_frames: int) -> dict[str, int]:
    """{"<name>_pairs": T - 1}: the weight of this video in VBench's across-video average, which
    sums similarities and frame counts over all videos (sim / cnt in subject_consistency.py and
    background_consistency.py) instead of averaging per-video means; reports weight by it."""
    return {f"{name}_pairs": max(num_frames - 1, 0)}
