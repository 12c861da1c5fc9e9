"""AMT-S (Li et al., CVPR 2023), the frame interpolator of VBench motion_smoothness.

Follows `Model` of vbench/third_party/amt/networks/AMT-S.py (VBench's copy of MCG-NKU/AMT) with
its AMT-S.yaml settings (corr_radius 3, corr_lvls 4, num_flows 3, channels 20/32/44/56, skip 20)
in eval mode; `state_dict()` keys and shapes equal the official `amt-s.pth` (`state_dict`
entry), so it loads with strict=True. Frames are padded to a multiple of 16 as VBench's
`InputPadder` does (utils/utils.py) by `interpolate_midframes`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kvlock.metrics.amt_blocks import (
    BidirectionalCorrelation,
    FeatureEncoder,
    InitDecoder,
    IntermediateDecoder,
    MultiFlowDecoder,
    PyramidEncoder,
    UpdateBlock,
    combine_flows,
    resize,
)

PAD_MULTIPLE = 16  # VBench MotionSmoothness: padding = int(16 / scale), scale 1
# correlation at 1/8 pooled 3 times must stay >= 2 px wide: below, bilinear_sampler divides by
# (W - 1) = 0 and the reference network's output is NaN (checked against it)
MIN_SIDE = 128


class AMTS(nn.Module):
    """(B, 3, H, W) x2 in [0, 1] (H, W multiples of 16) and t -> the frame at t in [0, 1]."""

    def __init__(self, corr_radius: int = 3, corr_levels: int = 4, num_flows: int = 3,
                 channels: tuple[int, ...] = (20, 32, 44, 56), skip_channels: int = 20):
        super().__init__()
        self.radius, self.corr_levels = corr_radius, corr_levels
        self.feat_encoder = FeatureEncoder(out_dim=84)
        self.encoder = PyramidEncoder(list(channels))
        self.decoder4 = InitDecoder(channels[3], channels[2], skip_channels)
        self.decoder3 = IntermediateDecoder(channels[2], channels[1], skip_channels)
        self.decoder2 = IntermediateDecoder(channels[1], channels[0], skip_channels)
        self.decoder1 = MultiFlowDecoder(channels[0], skip_channels, num_flows)
        self.update4 = UpdateBlock(channels[2], corr_levels, corr_radius)
        self.update3 = UpdateBlock(channels[1], corr_levels, corr_radius, scale=2)
        self.update2 = UpdateBlock(channels[0], corr_levels, corr_radius, scale=4)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1), nn.PReLU(6 * num_flows),
            nn.Conv2d(6 * num_flows, 3, 3, 1, 1),
        )

    @staticmethod
    def _pixel_grid(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(B, 2, h, w) x, y pixel coordinates (raft.py `coords_grid`)."""
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
        return torch.stack([xs, ys]).float()[None].repeat(b, 1, 1, 1)

    def _refine(self, update: UpdateBlock, corr: BidirectionalCorrelation, grid, embt,
                flow0, flow1, feature, downsample: int):
        """Look up the correlation where the t->1 and t->0 flows, rescaled to 0->1 and 1->0 by
        the linear-motion assumption, land (AMT-S.py `_corr_scale_lookup`), and add the update
        block's residuals to the flows and the t feature."""
        small0, small1 = flow0, flow1
        if downsample != 1:
            small0 = resize(flow0, 1 / downsample) / downsample
            small1 = resize(flow1, 1 / downsample) / downsample
        corr0, corr1 = corr.lookup(grid + small1 * (1.0 / embt),
                                   grid + small0 * (1.0 / (1.0 - embt)))
        delta_feature, delta_flow = update(feature, torch.cat([small0, small1], 1),
                                           torch.cat([corr0, corr1], 1))
        return flow0 + delta_flow[:, 0:2], flow1 + delta_flow[:, 2:4], feature + delta_feature

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor | float = 0.5,
                scale_factor: float = 1.0) -> torch.Tensor:
        """-> (B, 3, H, W) clamped to [0, 1] (the reference's `imgt_pred` with eval=True);
        `embt`: t as a float or a (B or 1, 1, 1, 1) tensor; `scale_factor` < 1 runs the network
        on downscaled frames and upsamples its flows (VBench's low-memory mode)."""
        if not torch.is_tensor(embt):
            embt = torch.tensor(float(embt), device=img0.device)
        embt = embt.to(img0).reshape(-1, 1, 1, 1)
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(
            3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        small0 = resize(img0, scale_factor) if scale_factor != 1.0 else img0
        small1 = resize(img1, scale_factor) if scale_factor != 1.0 else img1
        b, _, h, w = small0.shape
        grid = self._pixel_grid(b, h // 8, w // 8, img0.device)
        fmap0, fmap1 = self.feat_encoder(torch.cat([small0, small1])).split(b)
        corr = BidirectionalCorrelation(fmap0, fmap1, self.corr_levels, self.radius)
        f0 = self.encoder(small0)  # 1/2, 1/4, 1/8, 1/16
        f1 = self.encoder(small1)

        flow0, flow1, ft = self.decoder4(f0[3], f1[3], embt)
        flow0, flow1, ft = self._refine(self.update4, corr, grid, embt, flow0, flow1, ft, 1)
        flow0, flow1, ft = self.decoder3(ft, f0[2], f1[2], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update3, corr, grid, embt, flow0, flow1, ft, 2)
        flow0, flow1, ft = self.decoder2(ft, f0[1], f1[1], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update2, corr, grid, embt, flow0, flow1, ft, 4)
        flow0, flow1, mask, residual = self.decoder1(ft, f0[0], f1[0], flow0, flow1)
        if scale_factor != 1.0:
            up = 1.0 / scale_factor
            flow0, flow1 = resize(flow0, up) * up, resize(flow1, up) * up
            mask, residual = resize(mask, up), resize(residual, up)
        frame = combine_flows(self.comb_block, img0, img1, flow0, flow1, mask, residual, mean)
        return frame.clamp(0, 1)


def pad_to_multiple(frames: torch.Tensor, multiple: int = PAD_MULTIPLE):
    """Replicate-pad (N, C, H, W) to multiples of `multiple`, split as VBench's `InputPadder`
    (left/top get the smaller half) -> (padded, crop) where `crop(x)` undoes it."""
    h, w = frames.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    top, left = pad_h // 2, pad_w // 2
    # contiguous (NCHW) as VBench's padded frames are: a channels-last input would make the
    # convolutions sum in another order (differences of ~1e-6)
    padded = F.pad(frames.contiguous(), [left, pad_w - left, top, pad_h - top], mode="replicate")
    return padded, lambda x: x[..., top: top + h, left: left + w]


def load_amt_s(path: Path) -> AMTS:
    """AMT-S with the weights of `path` (the official checkpoint holds them under
    `state_dict`; a bare state dict is accepted too); strict: every key must match."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: cannot be read as a weights file: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: not an AMT-S checkpoint (a {type(checkpoint).__name__})")
    state = checkpoint.get("state_dict", checkpoint)
    model = AMTS()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: not an AMT-S state dict: {err}") from err
    return model
