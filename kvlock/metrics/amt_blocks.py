"""Building blocks of the AMT-S frame interpolator (kvlock.metrics.amt_s).

Written against MCG-NKU/AMT as vendored by VBench (vbench/third_party/amt/networks/blocks/*.py,
utils/flow_utils.py); each class names the reference it follows. Attribute names and
Sequential layouts are the reference's, so `state_dict()` keys equal those of `amt-s.pth`.
Normalisation layers are parameter-free InstanceNorm2d (the reference's norm_fn='instance').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear rescale by `scale` (blocks/ifrnet.py and raft.py `resize`)."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp (utils/flow_utils.py `warp`): (B, C, H, W) sampled at pixel + flow (B, 2,
    H, W, x then y in pixels), border padding, corners aligned."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    grid_x = xs.view(1, 1, w) + flow[:, 0] / ((w - 1.0) / 2.0)
    grid_y = ys.view(1, h, 1) + flow[:, 1] / ((h - 1.0) / 2.0)
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def conv_prelu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
               padding: int = 1) -> nn.Sequential:
    """Conv + per-channel PReLU (blocks/ifrnet.py `convrelu`): keys `0.*`, `1.weight`."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.PReLU(c_out))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 residual block with instance norm (blocks/feat_enc.py
    `BottleneckBlock`, norm_fn='instance')."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 4, 1)
        self.conv2 = nn.Conv2d(c_out // 4, c_out // 4, 3, stride, 1)
        self.conv3 = nn.Conv2d(c_out // 4, c_out, 1)
        self.norm1, self.norm2 = nn.InstanceNorm2d(c_out // 4), nn.InstanceNorm2d(c_out // 4)
        self.norm3 = nn.InstanceNorm2d(c_out)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride),
                                            nn.InstanceNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(skip + y)


class FeatureEncoder(nn.Module):
    """Correlation features (blocks/feat_enc.py `SmallEncoder`, instance norm, no dropout):
    (N, 3, H, W) -> (N, out_dim, H/8, W/8)."""

    def __init__(self, out_dim: int = 84):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 3)
        self.norm1 = nn.InstanceNorm2d(32)
        self.layer1 = nn.Sequential(Bottleneck(32, 32), Bottleneck(32, 32))
        self.layer2 = nn.Sequential(Bottleneck(32, 64, 2), Bottleneck(64, 64))
        self.layer3 = nn.Sequential(Bottleneck(64, 96, 2), Bottleneck(96, 96))
        self.conv2 = nn.Conv2d(96, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class PyramidEncoder(nn.Module):
    """Context pyramid (blocks/ifrnet.py `Encoder`, large=False): (N, 3, H, W) -> features at
    1/2, 1/4, 1/8, 1/16 with `channels` channels; modules `pyramid1..4`."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.levels = len(channels)
        for index, (c_in, c_out) in enumerate(zip([3, *channels[:-1]], channels), 1):
            level = nn.Sequential(conv_prelu(c_in, c_out, 3, 2, 1), conv_prelu(c_out, c_out))
            self.add_module(f"pyramid{index}", level)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index in range(1, self.levels + 1):
            x = getattr(self, f"pyramid{index}")(x)
            features.append(x)
        return features


class SideResBlock(nn.Module):
    """Residual block whose last `side` channels get extra convolutions (blocks/ifrnet.py
    `ResBlock`)."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = side
        self.conv1 = conv_prelu(channels, channels)
        self.conv2 = conv_prelu(side, side)
        self.conv3 = conv_prelu(channels, channels)
        self.conv4 = conv_prelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def _side(self, x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        return torch.cat([x[:, : -self.side], conv(x[:, -self.side:])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self._side(self.conv1(x), self.conv2))
        out = self.conv5(self._side(out, self.conv4))
        return self.prelu(x + out)


def decoder_block(c_in: int, width: int, c_out: int, side: int) -> nn.Sequential:
    """conv+PReLU to `width`, side residual block, 2x transposed conv to `c_out` (the
    `convblock` of the reference's decoders)."""
    return nn.Sequential(conv_prelu(c_in, width), SideResBlock(width, side),
                         nn.ConvTranspose2d(width, c_out, 4, 2, 1))


class InitDecoder(nn.Module):
    """Coarsest decoder (blocks/ifrnet.py `InitDecoder`): 1/16 features of both frames and t
    (B or 1, 1, 1, 1) -> flows t->0, t->1 (B, 2, H/8, W/8) and the t feature at 1/8."""

    def __init__(self, c_in: int, c_out: int, side: int):
        super().__init__()
        self.convblock = decoder_block(2 * c_in + 1, 2 * c_in, c_out + 4, side)

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, embt: torch.Tensor):
        b, _, h, w = f0.shape
        out = self.convblock(torch.cat([f0, f1, embt.expand(b, 1, h, w)], 1))
        return out[:, 0:2], out[:, 2:4], out[:, 4:]


class IntermediateDecoder(nn.Module):
    """Refining decoder (blocks/ifrnet.py `IntermediateDecoder`): t feature, both frames'
    features warped by the coarser flows, the flows -> flows at 2x resolution (residual on
    the upsampled, doubled input flows) and the next t feature."""

    def __init__(self, c_in: int, c_out: int, side: int):
        super().__init__()
        self.convblock = decoder_block(3 * c_in + 4, 3 * c_in, c_out + 4, side)

    def forward(self, ft, f0, f1, flow0, flow1):
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        new0 = out[:, 0:2] + 2.0 * resize(flow0, 2.0)
        new1 = out[:, 2:4] + 2.0 * resize(flow1, 2.0)
        return new0, new1, out[:, 4:]


class MultiFlowDecoder(nn.Module):
    """Finest decoder (blocks/multi_flow.py `MultiFlowDecoder`): `num_flows` flow pairs at full
    resolution, their blend masks (sigmoid) and colour residuals."""

    def __init__(self, c_in: int, side: int, num_flows: int):
        super().__init__()
        self.num_flows = num_flows
        self.convblock = decoder_block(3 * c_in + 4, 3 * c_in, 8 * num_flows, side)

    def forward(self, ft, f0, f1, flow0, flow1):
        n = self.num_flows
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        delta0, delta1, mask, residual = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        new0 = delta0 + 2.0 * resize(flow0, 2.0).repeat(1, n, 1, 1)
        new1 = delta1 + 2.0 * resize(flow1, 2.0).repeat(1, n, 1, 1)
        return new0, new1, torch.sigmoid(mask), residual


def combine_flows(comb_block: nn.Module, img0, img1, flow0, flow1, mask, residual, mean):
    """Blend the `num_flows` candidate frames (blocks/multi_flow.py `multi_flow_combine`):
    each is mask * warp(img0) + (1 - mask) * warp(img1) + mean + residual; the prediction is
    their average plus `comb_block` of all of them. Flows (B, 2n, H, W) -> (B, 3, H, W)."""
    b, c2n, h, w = flow0.shape
    n = c2n // 2

    def per_flow(x: torch.Tensor, channels: int) -> torch.Tensor:
        return x.reshape(b * n, channels, *x.shape[-2:])

    def repeated(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(b, n, *x.shape[1:]).reshape(b * n, *x.shape[1:])

    blend = per_flow(mask, 1)
    warped = (blend * warp(repeated(img0), per_flow(flow0, 2))
              + (1 - blend) * warp(repeated(img1), per_flow(flow1, 2))
              + repeated(mean) + per_flow(residual, 3))
    warped = warped.reshape(b, n, 3, h, w)
    return warped.mean(1) + comb_block(warped.reshape(b, 3 * n, h, w))


class UpdateBlock(nn.Module):
    """Correlation-guided residual update of the t feature and both flows (blocks/raft.py
    `SmallUpdateBlock`). Works at the 1/8 correlation resolution: the feature is first
    downscaled by `scale` and the deltas upscaled back (flow deltas times `scale`)."""

    def __init__(self, cdim: int, corr_levels: int, radius: int, scale: int | None = None,
                 hidden: int = 76, flow_dim: int = 20, corr_dim: int = 64, fc_dim: int = 68):
        super().__init__()
        self.scale = scale
        corr_planes = 2 * corr_levels * (2 * radius + 1) ** 2
        self.convc1 = nn.Conv2d(corr_planes, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, 2 * flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * flow_dim, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)
        self.gru = self._two_convs(fc_dim + 4 + cdim, hidden, hidden)
        self.feat_head = self._two_convs(hidden, hidden, cdim)
        self.flow_head = self._two_convs(hidden, hidden, 4)

    @staticmethod
    def _two_convs(c_in: int, width: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.LeakyReLU(0.1),
                             nn.Conv2d(width, c_out, 3, padding=1))

    def forward(self, feature, flow, corr):
        if self.scale is not None:
            feature = resize(feature, 1 / self.scale)
        corr = F.leaky_relu(self.convc1(corr), 0.1)
        motion = F.leaky_relu(self.convf2(F.leaky_relu(self.convf1(flow), 0.1)), 0.1)
        motion = F.leaky_relu(self.conv(torch.cat([corr, motion], 1)), 0.1)
        hidden = self.gru(torch.cat([motion, flow, feature], 1))
        delta_feature, delta_flow = self.feat_head(hidden), self.flow_head(hidden)
        if self.scale is not None:
            delta_feature = resize(delta_feature, self.scale)
            delta_flow = self.scale * resize(delta_flow, self.scale)
        return delta_feature, delta_flow


class BidirectionalCorrelation:
    """All-pairs correlation pyramids of two feature maps and their lookup (blocks/raft.py
    `BidirCorrBlock`). fmap0, fmap1: (B, C, h, w). Level l averages 2^l x 2^l cells of the
    looked-up side; `lookup` samples a (2r+1)^2 window around each point at every level."""

    def __init__(self, fmap0: torch.Tensor, fmap1: torch.Tensor, levels: int, radius: int):
        b, c, h, w = fmap0.shape
        self.radius = radius
        volume = torch.matmul(fmap0.flatten(2).transpose(1, 2), fmap1.flatten(2))
        volume = volume / torch.sqrt(torch.tensor(c).float())  # (B, h*w of 0, h*w of 1)
        forward = volume.reshape(b * h * w, 1, h, w)  # for each pixel of 0: map over 1
        backward = volume.transpose(1, 2).reshape(b * h * w, 1, h, w)  # the converse
        self.forward_pyramid, self.backward_pyramid = [forward], [backward]
        for _ in range(levels - 1):
            self.forward_pyramid.append(F.avg_pool2d(self.forward_pyramid[-1], 2, 2))
            self.backward_pyramid.append(F.avg_pool2d(self.backward_pyramid[-1], 2, 2))

    def _offsets(self, device: torch.device) -> torch.Tensor:
        """(1, 2r+1, 2r+1, 2) window offsets; as in RAFT's lookup, the window's first axis
        offsets x and its second offsets y."""
        r = self.radius
        steps = torch.linspace(-r, r, 2 * r + 1, device=device)
        return torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1)[None]

    @staticmethod
    def _sample(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Bilinear sample at pixel coordinates (raft.py `bilinear_sampler`, zeros outside)."""
        h, w = volume.shape[-2:]
        x = 2 * points[..., 0:1] / (w - 1) - 1
        y = 2 * points[..., 1:2] / (h - 1) - 1
        return F.grid_sample(volume, torch.cat([x, y], -1), align_corners=True)

    def lookup(self, coords0: torch.Tensor, coords1: torch.Tensor):
        """coords0 (where each pixel of 0 lands in 1) and coords1 (the converse), (B, 2, h, w)
        -> two (B, levels * (2r+1)^2, h, w) correlation features."""
        b, _, h, w = coords0.shape
        outs = []
        for pyramid, coords in ((self.forward_pyramid, coords0),
                                (self.backward_pyramid, coords1)):
            centre = coords.permute(0, 2, 3, 1).reshape(-1, 1, 1, 2)  # (B*h*w, 1, 1, 2)
            delta = self._offsets(coords.device)
            levels = [self._sample(volume, centre / 2**level + delta).view(b, h, w, -1)
                      for level, volume in enumerate(pyramid)]
            outs.append(torch.cat(levels, -1).permute(0, 3, 1, 2).contiguous().float())
        return outs[0], outs[1]
