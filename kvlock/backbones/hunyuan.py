"""HunyuanVideo backbone over diffusers' `HunyuanVideoTransformer3DModel`: dual-stream then
single-stream blocks, K/V control on the video tokens of both. The tiny size (seeded random
weights, lossless codec, tiny UMT5 prompt encoder whose mean token stands in for the pooled CLIP
projection) is for mechanics and tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import HunyuanVideoTransformer3DModel

from kvlock.backbones.base import VideoBackbone
from kvlock.backbones.codec import SpaceToDepthCodec
from kvlock.backbones.hunyuan_attention import (
    attention_layers,
    install_kv_control,
    remove_kv_control,
)
from kvlock.backbones.hunyuan_forward import hunyuan_forward
from kvlock.backbones.runtime import DTYPES, resolve_device
from kvlock.backbones.text import PromptEncoder
from kvlock.backbones.wan import build_tiny_text_encoder, build_tokenizer


@dataclass
class HunyuanBackbone(VideoBackbone):
    """Joint attention with the text tokens after the video tokens, in two block kinds."""

    embedded_guidance: float | None = None

    @property
    def patch_size(self) -> tuple[int, int, int]:
        cfg = self.transformer.config
        return (cfg.patch_size_t, cfg.patch_size, cfg.patch_size)

    @property
    def num_layers(self) -> int:
        return len(attention_layers(self.transformer))

    @property
    def inner_dim(self) -> int:
        cfg = self.transformer.config
        return cfg.num_attention_heads * cfg.attention_head_dim

    @property
    def ffn_dim(self) -> int:
        return int(self.inner_dim * self.transformer.config.mlp_ratio)

    def velocity(self, latents, t, context, token_index=None):
        """`hunyuan_forward` (flow matching: its output is the velocity); the pooled projection
        is the mean prompt token."""
        pooled = context.mean(dim=1)
        return hunyuan_forward(self.transformer, latents, t, context, pooled, token_index,
                               self.embedded_guidance)

    def install_kv_control(self, controller) -> None:
        install_kv_control(self.transformer, controller)

    def remove_kv_control(self) -> None:
        remove_kv_control(self.transformer)


def build_hunyuan_tiny(cfg: dict) -> HunyuanBackbone:
    """The real HunyuanVideoTransformer3DModel at a tiny size, seeded random weights, the lossless
    space-to-depth codec and the tiny UMT5 prompt encoder."""
    device, dtype = resolve_device(cfg.get("device", "cpu")), DTYPES[cfg.get("dtype", "float32")]
    torch.manual_seed(int(cfg.get("seed", 0)))
    codec = SpaceToDepthCodec(**cfg["codec"])
    tokenizer = build_tokenizer(cfg["text"])
    text_encoder = build_tiny_text_encoder(cfg["text"], tokenizer)
    tc = cfg["transformer"]
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=codec.latent_channels,
        out_channels=codec.latent_channels,
        num_attention_heads=tc["num_attention_heads"],
        attention_head_dim=tc["attention_head_dim"],
        num_layers=tc["num_layers"],
        num_single_layers=tc["num_single_layers"],
        num_refiner_layers=tc["num_refiner_layers"],
        mlp_ratio=float(tc.get("mlp_ratio", 2.0)),
        patch_size=tc.get("patch_size", 2),
        patch_size_t=1,
        guidance_embeds=False,
        text_embed_dim=cfg["text"]["d_model"],
        pooled_projection_dim=cfg["text"]["d_model"],
        rope_axes_dim=tuple(tc["rope_axes_dim"]),
    )
    transformer = transformer.to(device)
    return HunyuanBackbone(
        name=cfg["name"],
        transformer=(transformer if dtype == torch.float32 else transformer.to(dtype)).eval(),
        codec=codec,
        prompt_encoder=PromptEncoder(tokenizer, text_encoder.to(device), cfg["text"]["max_length"]),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"weights": "seeded-random", "seed": int(cfg.get("seed", 0))},
    )
