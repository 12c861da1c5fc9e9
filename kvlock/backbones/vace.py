"""Wan-VACE, the trained baseline: diffusers' `WanVACETransformer3DModel` conditioned on the edit.

VACE's masked video-to-video editing, as `WanVACEPipeline` prepares it (pipeline_wan_vace.py,
`prepare_video_latents` and `prepare_masks`): the source video with the edit region blanked
(`inactive`, mask → 0 = mid-grey) and the edit region alone (`reactive`) are encoded by the codec,
and the pixel mask is folded into spatial_factor² channels at latent resolution; the three,
concatenated on channels, are the control latents of every forward. The engine then runs a plain
flow-matching generation from noise with the target prompt (conf/method/vace.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import WanVACETransformer3DModel

from kvlock.backbones.codec import SpaceToDepthCodec, frames_to_unit
from kvlock.backbones.runtime import DTYPES, resolve_device
from kvlock.backbones.text import PromptEncoder
from kvlock.backbones.wan import (
    WanBackbone,
    build_tiny_text_encoder,
    build_tokenizer,
    load_wan_pretrained,
    tiny_transformer_config,
)


def vace_control_latents(codec, frames, mask) -> torch.Tensor:
    """frames (T, H, W, 3) uint8, mask (T, H, W) bool -> (1, 2·C + s², F, h, w) float32."""
    video = frames_to_unit(frames)  # (3, T, H, W)
    m = torch.as_tensor(mask).float()[None]  # (1, T, H, W)
    inactive = codec.encode_unit(video * (1 - m)).float().cpu()
    reactive = codec.encode_unit(video * m).float().cpu()
    t, h, w = mask.shape
    s = codec.spatial_factor
    folded = m[0].view(t, h // s, s, w // s, s).permute(2, 4, 0, 1, 3).flatten(0, 1)  # (s², T, h, w)
    folded = F.interpolate(folded[None], size=inactive.shape[2:], mode="nearest-exact")
    return torch.cat([inactive, reactive, folded], dim=1)


@dataclass
class VACEBackbone(WanBackbone):
    """A Wan-VACE transformer; `condition_on(sample)` sets the control latents of its forwards."""

    control: torch.Tensor | None = None
    conditioning = "vace"

    def condition_on(self, sample) -> None:
        self.control = vace_control_latents(self.codec, sample.frames, sample.mask).to(self.device)

    @torch.no_grad()
    def velocity(self, latents, t, context, token_index=None):
        """diffusers' own VACE forward with the edit's control latents (all tokens)."""
        if token_index is not None:
            raise ValueError("VACE runs every token: method.fg_only is not supported with a VACE model")
        if self.control is None:
            raise RuntimeError("VACE needs the edit's masked video: call condition_on(sample) first")
        control = self.control.expand(latents.shape[0], -1, -1, -1, -1).to(self.dtype)
        out = self.transformer(latents.to(self.dtype), timestep=t.to(latents.device) * 1000.0,
                               encoder_hidden_states=context, control_hidden_states=control,
                               return_dict=False)[0]
        return out.float()


def build_wan_vace_tiny(cfg: dict) -> VACEBackbone:
    """The real WanVACETransformer3DModel at a tiny size with seeded random weights, the lossless
    space-to-depth codec and the tiny UMT5 prompt encoder (wan_tiny's)."""
    device, dtype = resolve_device(cfg.get("device", "cpu")), DTYPES[cfg.get("dtype", "float32")]
    torch.manual_seed(int(cfg.get("seed", 0)))
    codec = SpaceToDepthCodec(**cfg["codec"])
    tokenizer = build_tokenizer(cfg["text"])
    text_encoder = build_tiny_text_encoder(cfg["text"], tokenizer)
    tc = cfg["transformer"]
    transformer = WanVACETransformer3DModel(
        **tiny_transformer_config(tc, codec.latent_channels, cfg["text"]["d_model"]),
        vace_layers=list(tc["vace_layers"]),
        vace_in_channels=2 * codec.latent_channels + codec.spatial_factor**2,
    ).to(device)
    return VACEBackbone(
        name=cfg["name"],
        transformer=(transformer if dtype == torch.float32 else transformer.to(dtype)).eval(),
        codec=codec,
        prompt_encoder=PromptEncoder(tokenizer, text_encoder.to(device), cfg["text"]["max_length"]),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"weights": "seeded-random", "seed": int(cfg.get("seed", 0))},
    )


def load_wan_vace_pretrained(cfg: dict) -> VACEBackbone:
    """A Wan-VACE checkpoint (hub id or local diffusers folder, e.g. Wan2.1-VACE-1.3B-diffusers):
    Wan's loader with the VACE transformer class."""
    return load_wan_pretrained(cfg, WanVACETransformer3DModel, VACEBackbone)
