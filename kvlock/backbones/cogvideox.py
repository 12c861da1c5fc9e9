"""CogVideoX backbone over diffusers' `CogVideoXTransformer3DModel`: one joint attention over
[text; video] tokens, K/V control on the video tokens only. The tiny size (seeded random weights,
lossless codec, tiny UMT5 prompt encoder) is for mechanics and tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import CogVideoXTransformer3DModel

from kvlock.backbones.base import VideoBackbone
from kvlock.backbones.codec import SpaceToDepthCodec
from kvlock.backbones.cogvideox_attention import install_kv_control, remove_kv_control
from kvlock.backbones.cogvideox_forward import cogvideox_forward
from kvlock.backbones.runtime import DTYPES, resolve_device
from kvlock.backbones.text import PromptEncoder
from kvlock.backbones.wan import build_tiny_text_encoder, build_tokenizer


@dataclass
class CogVideoXBackbone(VideoBackbone):
    """Joint attention: text tokens sit before the video tokens in one sequence."""

    @property
    def patch_size(self) -> tuple[int, int, int]:
        p = self.transformer.config.patch_size
        return (1, p, p)

    @property
    def num_layers(self) -> int:
        return len(self.transformer.transformer_blocks)

    @property
    def inner_dim(self) -> int:
        cfg = self.transformer.config
        return cfg.num_attention_heads * cfg.attention_head_dim

    def velocity(self, latents, t, context, token_index=None):
        """`cogvideox_forward`, its output read as the flow-matching velocity."""
        return cogvideox_forward(self.transformer, latents, t, context, token_index)

    def install_kv_control(self, controller) -> None:
        install_kv_control(self.transformer, controller)

    def remove_kv_control(self) -> None:
        remove_kv_control(self.transformer)


def build_cogvideox_tiny(cfg: dict) -> CogVideoXBackbone:
    """The real CogVideoXTransformer3DModel at a tiny size with 3D RoPE (as CogVideoX-5b), seeded
    random weights, the lossless space-to-depth codec and the tiny UMT5 prompt encoder."""
    device, dtype = resolve_device(cfg.get("device", "cpu")), DTYPES[cfg.get("dtype", "float32")]
    torch.manual_seed(int(cfg.get("seed", 0)))
    codec = SpaceToDepthCodec(**cfg["codec"])
    tokenizer = build_tokenizer(cfg["text"])
    text_encoder = build_tiny_text_encoder(cfg["text"], tokenizer)
    tc = cfg["transformer"]
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=tc["num_attention_heads"],
        attention_head_dim=tc["attention_head_dim"],
        in_channels=codec.latent_channels,
        out_channels=codec.latent_channels,
        time_embed_dim=tc["time_embed_dim"],
        text_embed_dim=cfg["text"]["d_model"],
        num_layers=tc["num_layers"],
        sample_height=tc["sample_height"],
        sample_width=tc["sample_width"],
        patch_size=tc.get("patch_size", 2),
        temporal_compression_ratio=codec.temporal_factor,
        max_text_seq_length=cfg["text"]["max_length"],
        use_rotary_positional_embeddings=bool(tc.get("rotary", True)),
    )
    transformer = transformer.to(device)
    return CogVideoXBackbone(
        name=cfg["name"],
        transformer=(transformer if dtype == torch.float32 else transformer.to(dtype)).eval(),
        codec=codec,
        prompt_encoder=PromptEncoder(tokenizer, text_encoder.to(device), cfg["text"]["max_length"]),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"weights": "seeded-random", "seed": int(cfg.get("seed", 0))},
    )
