"""Pixel masks -> latent-pixel and token masks ("any pixel" rule) and back to pixel resolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kvlock.backbones.geometry import LatentGeometry, tokens_box


def latent_frame_mask(mask: np.ndarray, temporal_factor: int) -> torch.Tensor:
    """(T, H, W) bool -> (F, H, W) bool: frame 0 alone, then max over each group of frames."""
    m = torch.as_tensor(np.ascontiguousarray(mask)).bool()
    rest = m[1:].reshape(-1, temporal_factor, *m.shape[1:]).any(dim=1)
    return torch.cat([m[:1], rest], dim=0)


def token_mask(mask: np.ndarray, geometry: LatentGeometry, dilation: int = 0) -> torch.Tensor:
    """(T, H, W) bool pixel mask -> (F', h', w') bool token mask, True = foreground token.

    A token is foreground if any pixel of its patch (over its frames) is foreground; `dilation`
    grows the token mask by that many tokens in h and w (3x3 max-pool per step).
    """
    m = latent_frame_mask(mask, geometry.temporal_factor).float()
    pt, ph, pw = geometry.patch_size
    k = (pt, geometry.spatial_factor * ph, geometry.spatial_factor * pw)
    tokens = F.max_pool3d(m[None, None], kernel_size=k, stride=k)
    for _ in range(dilation):
        tokens = F.max_pool3d(tokens, kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))
    return tokens[0, 0].bool()


def latent_mask(mask: np.ndarray, geometry: LatentGeometry, dilation: int = 0) -> torch.Tensor:
    """(T, H, W) bool pixel mask -> (1, 1, F, h, w) bool, True = latent pixel the edit generates.

    The pixel mask pooled to latent pixels, not to tokens: frames as in `latent_frame_mask`, then
    the max over each spatial_factor² block. KV-Edit blends its source background at this
    granularity inside boundary tokens (Xilluill/KV-Edit models/kv_edit.py,
    `Flux_kv_edit.denoise`: the mask resized to the latent grid, any value > 0 set to 1, used per
    packed latent pixel by `flux/sampling.py` `denoise_kv`). `dilation` (in tokens, as in
    `token_mask`) grows it by dilation·patch latent pixels, so it stays inside the token mask.
    """
    m = latent_frame_mask(mask, geometry.temporal_factor).float()
    s = geometry.spatial_factor
    latent = F.max_pool3d(m[None, None], kernel_size=(1, s, s), stride=(1, s, s))
    if dilation:
        _, ph, pw = geometry.patch_size
        rh, rw = dilation * ph, dilation * pw
        latent = F.max_pool3d(latent, kernel_size=(1, 2 * rh + 1, 2 * rw + 1), stride=1,
                              padding=(0, rh, rw))
    return latent.bool()


def pixel_region(mask: np.ndarray, geometry: LatentGeometry, dilation: int = 0) -> np.ndarray:
    """(T, H, W) bool: the pixel mask grown like `latent_mask` (dilation·patch·spatial_factor
    pixels), i.e. the pixels an edit may change; paste-back keeps the source everywhere else."""
    m = torch.as_tensor(np.ascontiguousarray(mask)).bool()
    if dilation:
        _, ph, pw = geometry.patch_size
        rh, rw = dilation * ph * geometry.spatial_factor, dilation * pw * geometry.spatial_factor
        grown = F.max_pool2d(m[:, None].float(), kernel_size=(2 * rh + 1, 2 * rw + 1), stride=1,
                             padding=(rh, rw))
        m = grown[:, 0].bool()
    return m.numpy()


def tokens_to_latent(tokens: torch.Tensor, geometry: LatentGeometry) -> torch.Tensor:
    """(F', h', w') bool -> (1, 1, F, h, w) bool on the latent grid."""
    pt, ph, pw = geometry.patch_size
    m = tokens.repeat_interleave(pt, 0).repeat_interleave(ph, 1).repeat_interleave(pw, 2)
    return m[None, None]


def tokens_to_pixels(tokens: torch.Tensor, geometry: LatentGeometry, num_frames: int) -> np.ndarray:
    """(F', h', w') bool -> (T, H, W) bool: the pixels each token covers in the decoded video."""
    latent = tokens_to_latent(tokens, geometry)[0, 0]
    s = geometry.spatial_factor
    pix = latent.repeat_interleave(s, 1).repeat_interleave(s, 2)
    frames = torch.cat([pix[:1], pix[1:].repeat_interleave(geometry.temporal_factor, 0)], dim=0)
    return frames[:num_frames].cpu().numpy()


def latent_box(tokens: torch.Tensor, geometry: LatentGeometry) -> tuple[slice, slice, slice] | None:
    """(F', h', w') bool token mask -> the (F, h, w) slices of the smallest patch-aligned latent
    box that holds every True token; None when no token is True."""
    if not bool(tokens.any()):
        return None
    return tokens_box(tokens.flatten().nonzero().flatten(), tuple(tokens.shape), geometry.patch_size)
