"""Latent and token grid geometry of a video backbone."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameRules:
    """What clip sizes a backbone accepts: T = temporal_factor·k + 1, H and W multiples of size_multiple."""

    temporal_factor: int
    size_multiple: int

    def valid_num_frames(self, num_frames: int) -> bool:
        return num_frames >= 1 and (num_frames - 1) % self.temporal_factor == 0

    def largest_valid_num_frames(self, num_frames: int) -> int:
        """Largest T' ≤ num_frames with T' = temporal_factor·k + 1 (k ≥ 0)."""
        return ((num_frames - 1) // self.temporal_factor) * self.temporal_factor + 1


@dataclass(frozen=True)
class LatentGeometry:
    """Codec compression and transformer patching.

    A clip (T, H, W) encodes to latents (C, F, h, w) with F = (T-1)/temporal_factor + 1 (the first
    frame alone, then groups of temporal_factor frames), h = H/spatial_factor, w = W/spatial_factor;
    the transformer cuts latents into patches (pt, ph, pw), one token each.
    """

    temporal_factor: int
    spatial_factor: int
    patch_size: tuple[int, int, int]
    latent_channels: int

    @property
    def frame_rules(self) -> FrameRules:
        return FrameRules(self.temporal_factor, self.spatial_factor * self.patch_size[1])

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the latents of a (T, H, W) clip; raises on sizes the backbone rejects."""
        rules = self.frame_rules
        if not rules.valid_num_frames(num_frames):
            raise ValueError(
                f"frame count {num_frames} is not {self.temporal_factor}k+1 (nearest valid: "
                f"{rules.largest_valid_num_frames(num_frames)})"
            )
        if height % rules.size_multiple or width % rules.size_multiple:
            raise ValueError(f"size {height}x{width} is not a multiple of {rules.size_multiple}")
        frames = (num_frames - 1) // self.temporal_factor + 1
        return (
            self.latent_channels,
            frames,
            height // self.spatial_factor,
            width // self.spatial_factor,
        )

    def token_grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(F', h', w') token grid; tokens are flattened in this (frame, row, column) order."""
        _, frames, h, w = self.latent_shape(num_frames, height, width)
        pt, ph, pw = self.patch_size
        return frames // pt, h // ph, w // pw

    def num_tokens(self, num_frames: int, height: int, width: int) -> int:
        f, h, w = self.token_grid(num_frames, height, width)
        return f * h * w


def token_coords(token_index: torch.Tensor, grid: tuple[int, int, int]) -> tuple[torch.Tensor, ...]:
    """(n,) token indices on the (F', h', w') token grid -> their (frame, row, column), (n,) each."""
    _, gh, gw = grid
    rest = token_index % (gh * gw)
    return token_index // (gh * gw), rest // gw, rest % gw


def tokens_box(token_index: torch.Tensor, grid: tuple[int, int, int],
               patch: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The (F, h, w) slices of the smallest patch-aligned latent box holding the tokens (one host
    sync for all six bounds)."""
    coords = token_coords(token_index, grid)
    bounds = torch.stack([torch.stack([c.min(), c.max()]) for c in coords]).tolist()
    return tuple(slice(lo * p, (hi + 1) * p) for (lo, hi), p in zip(bounds, patch))
