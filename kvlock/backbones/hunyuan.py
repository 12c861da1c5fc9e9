"""HunyuanVideo backbone over diffusers' `HunyuanVideoTransformer3DModel`: dual-stream then
single-stream blocks, K/V control on the video tokens of both. The tiny size (seeded random
weights, lossless codec, tiny UMT5 prompt encoder whose mean token stands in for the pooled CLIP
projection) is for mechanics and tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import HunyuanVideoTransformer3DModel

from kvlock.backbones.base import VideoBackbone
from kvlock.backbones.codec import ScaledVAECodec, SpaceToDepthCodec
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
    packed_context: bool = False  # checkpoints: context rows carry [LLaMA tokens; pooled CLIP + mask]

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
        """`hunyuan_forward` (flow matching: its output is the velocity). Tiny model: the pooled
        projection is the mean prompt token; checkpoints: unpacked from the context."""
        if self.packed_context:
            context, pooled, mask = unpack_context(context, self.transformer.config.pooled_projection_dim)
        else:
            pooled, mask = context.mean(dim=1), None
        return hunyuan_forward(self.transformer, latents, t, context, pooled, token_index,
                               self.embedded_guidance, mask)

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


def pack_context(embeds: torch.Tensor, pooled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) LLaMA tokens, (B, P) pooled CLIP, (B, L) mask -> (B, L + 1, D): one tensor per
    prompt, as the engine hands contexts around; the last row holds [pooled, mask, 0…]."""
    b, length, dim = embeds.shape
    if pooled.shape[1] + length > dim:
        raise ValueError(f"cannot pack a pooled ({pooled.shape[1]}) + mask ({length}) row into width {dim}: "
                         "lower model.max_sequence_length")
    extra = embeds.new_zeros(b, 1, dim)
    extra[:, 0, : pooled.shape[1]] = pooled.to(embeds.dtype)
    extra[:, 0, pooled.shape[1] : pooled.shape[1] + length] = mask.to(embeds.dtype)
    return torch.cat([embeds, extra], dim=1)


def unpack_context(context: torch.Tensor, pooled_dim: int):
    """Inverse of `pack_context` -> (embeds (B, L, D), pooled (B, P), mask (B, L) long)."""
    embeds, extra = context[:, :-1], context[:, -1]
    length = embeds.shape[1]
    return embeds, extra[:, :pooled_dim], extra[:, pooled_dim : pooled_dim + length].round().long()


class HunyuanPromptEncoder(torch.nn.Module):
    """Prompts -> packed contexts through `HunyuanVideoPipeline.encode_prompt` (LLaMA hidden
    states with its prompt template, the CLIP pooled projection, the text mask)."""

    def __init__(self, pipeline, max_sequence_length: int, prompt_template: dict | None):
        super().__init__()
        self.pipeline = pipeline
        self.max_sequence_length = max_sequence_length
        self.prompt_template = prompt_template

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

        embeds, pooled, mask = self.pipeline.encode_prompt(
            [p.strip() for p in prompts], prompt_template=self.prompt_template or DEFAULT_PROMPT_TEMPLATE,
            device=self.pipeline.text_encoder.device, max_sequence_length=self.max_sequence_length)
        return pack_context(embeds, pooled, mask)


def load_hunyuan_pretrained(cfg: dict) -> HunyuanBackbone:
    """HunyuanVideo checkpoints (hub id or local diffusers folder) through `from_pretrained`,
    prompts through the pipeline's own `encode_prompt`, embedded guidance from the config."""
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoPipeline

    path, revision = str(cfg["path"]), cfg.get("revision")
    device, dtype = resolve_device(cfg.get("device", "auto")), DTYPES[cfg.get("dtype", "bfloat16")]
    vae_dtype = DTYPES[cfg.get("vae_dtype", "float32")]
    common = {"revision": revision, "local_files_only": bool(cfg.get("local_files_only", False))}
    try:
        transformer = HunyuanVideoTransformer3DModel.from_pretrained(
            path, subfolder="transformer", torch_dtype=dtype, **common)
        vae = AutoencoderKLHunyuanVideo.from_pretrained(path, subfolder="vae", torch_dtype=vae_dtype, **common)
        pipeline = HunyuanVideoPipeline.from_pretrained(path, transformer=transformer, vae=vae,
                                                        torch_dtype=dtype, **common)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0]
        raise RuntimeError(f"cannot load HunyuanVideo checkpoint '{path}' (revision {revision}): {first_line}") \
            from err
    pipeline.to(device)
    template = cfg.get("prompt_template")
    return HunyuanBackbone(
        name=cfg["name"],
        transformer=pipeline.transformer.eval(),
        codec=ScaledVAECodec(pipeline.vae.eval(), vae.config.temporal_compression_ratio,
                             vae.config.spatial_compression_ratio),
        prompt_encoder=HunyuanPromptEncoder(pipeline, int(cfg.get("max_sequence_length", 256)),
                                            dict(template) if template else None),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"path": path, "revision": revision, "scheduler": dict(pipeline.scheduler.config)},
        embedded_guidance=float(cfg.get("embedded_guidance", 6.0)),
        packed_context=True,
    )
