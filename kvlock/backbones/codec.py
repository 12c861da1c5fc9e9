"""Video codecs: pixels (T, H, W, 3) uint8 <-> latents (1, C, F, h, w)."""

from __future__ import annotations

import numpy as np
import torch


def frames_to_unit(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float32 in [-1, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return x / 127.5 - 1.0


def unit_to_frames(x: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) float in [-1, 1] -> (T, H, W, 3) uint8 (rounded, clipped)."""
    u8 = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return u8.permute(1, 2, 3, 0).cpu().numpy()


class SpaceToDepthCodec(torch.nn.Module):
    """Lossless stand-in for a video VAE: the same geometry, an exact inverse.

    The first frame forms latent frame 0 (repeated into all temporal slots), then every group of
    `temporal_factor` frames forms one latent frame; each spatial block of `spatial_factor`² pixels
    is moved into channels. C = 3 · temporal_factor · spatial_factor².
    decode(encode(x)) == x bit for bit for uint8 input.
    """

    def __init__(self, temporal_factor: int = 4, spatial_factor: int = 2):
        super().__init__()
        self.temporal_factor = temporal_factor
        self.spatial_factor = spatial_factor

    @property
    def latent_channels(self) -> int:
        return 3 * self.temporal_factor * self.spatial_factor**2

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (1, C, F, H/s, W/s) float32 in [-1, 1]."""
        return self.encode_unit(frames_to_unit(frames))

    def encode_unit(self, x: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) float in [-1, 1] -> (1, C, F, H/s, W/s) float32."""
        tf, s = self.temporal_factor, self.spatial_factor
        first = x[:, :1].expand(-1, tf, -1, -1)
        x = torch.cat([first, x[:, 1:]], dim=1)  # (3, tf·F, H, W)
        c, t, h, w = x.shape
        x = x.reshape(c, t // tf, tf, h // s, s, w // s, s)
        x = x.permute(0, 2, 4, 6, 1, 3, 5)  # (3, tf, s, s, F, h, w)
        return x.reshape(1, c * tf * s * s, t // tf, h // s, w // s).contiguous()

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(1, C, F, h, w) -> (T, H, W, 3) uint8 with T = tf·(F-1) + 1."""
        tf, s = self.temporal_factor, self.spatial_factor
        _, _, f, h, w = latents.shape
        x = latents[0].float().reshape(3, tf, s, s, f, h, w).permute(0, 4, 1, 5, 2, 6, 3)
        x = x.reshape(3, f * tf, h * s, w * s)
        return unit_to_frames(x[:, tf - 1 :])


class WanVAECodec(torch.nn.Module):
    """The real Wan VAE (`AutoencoderKLWan`) with the latents mean/std normalisation both ways."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        z = vae.config.z_dim
        self.register_buffer("mean", torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1))
        self.register_buffer("std", torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1))
        self.temporal_factor = int(vae.config.scale_factor_temporal)
        self.spatial_factor = int(vae.config.scale_factor_spatial)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (1, z, F, h, w) normalised latents (posterior mode)."""
        return self.encode_unit(frames_to_unit(frames))

    @torch.no_grad()
    def encode_unit(self, x: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) float in [-1, 1] -> (1, z, F, h, w) normalised latents (posterior mode)."""
        x = x[None].to(self.vae.device, self.vae.dtype)
        mu = self.vae.encode(x).latent_dist.mode()
        return (mu.float() - self.mean) / self.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(1, z, F, h, w) normalised latents -> (T, H, W, 3) uint8."""
        z = latents.float() * self.std + self.mean
        x = self.vae.decode(z.to(self.vae.device, self.vae.dtype)).sample
        return unit_to_frames(x[0])


class ScaledVAECodec(torch.nn.Module):
    """A real video VAE normalised by one scaling factor both ways (CogVideoX's
    `AutoencoderKLCogVideoX`, HunyuanVideo's `AutoencoderKLHunyuanVideo`), as their pipelines use
    it (posterior mode instead of a sample: deterministic)."""

    def __init__(self, vae, temporal_factor: int, spatial_factor: int):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.temporal_factor = int(temporal_factor)
        self.spatial_factor = int(spatial_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (1, C, F, h, w) scaled latents."""
        return self.encode_unit(frames_to_unit(frames))

    @torch.no_grad()
    def encode_unit(self, x: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) float in [-1, 1] -> (1, C, F, h, w) scaled latents."""
        mu = self.vae.encode(x[None].to(self.vae.device, self.vae.dtype)).latent_dist.mode()
        return mu.float() * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(1, C, F, h, w) scaled latents -> (T, H, W, 3) uint8."""
        z = latents.float() / self.scaling_factor
        return unit_to_frames(self.vae.decode(z.to(self.vae.device, self.vae.dtype)).sample[0])
