"""CogVideoX backbone over diffusers' `CogVideoXTransformer3DModel`: one joint attention over
[text; video] tokens, K/V control on the video tokens only. The tiny size (seeded random weights,
lossless codec, tiny UMT5 prompt encoder) is for mechanics and tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import CogVideoXTransformer3DModel

from kvlock.backbones.base import VideoBackbone
from kvlock.backbones.codec import ScaledVAECodec, SpaceToDepthCodec
from kvlock.backbones.cogvideox_attention import install_kv_control, remove_kv_control
from kvlock.backbones.cogvideox_forward import cogvideox_forward
from kvlock.backbones.ddpm_bridge import DDPMBridge
from kvlock.backbones.runtime import DTYPES, resolve_device
from kvlock.backbones.text import HFTokenizer, PromptEncoder
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

    @property
    def ffn_dim(self) -> int:
        return 4 * self.inner_dim  # diffusers' FeedForward default (CogVideoXBlock sets no ff_inner_dim)

    bridge: DDPMBridge | None = None  # published checkpoints: DDPM v-prediction

    def velocity(self, latents, t, context, token_index=None):
        """`cogvideox_forward`; the tiny model's output is read as the flow-matching velocity,
        a checkpoint's v-prediction is converted by the `DDPMBridge`."""
        t = t.to(latents.device)
        if self.bridge is None:
            return cogvideox_forward(self.transformer, latents, t * 1000.0, context, token_index)
        tau, n, a, sigma = self.bridge.coefficients(t)
        x_tau = latents / n.view(-1, 1, 1, 1, 1)
        v_hat = cogvideox_forward(self.transformer, x_tau, tau, context, token_index)
        velocity = self.bridge.velocity(v_hat, x_tau.float(), a, sigma)
        if token_index is not None:
            velocity = velocity * self.token_coverage(latents.shape, token_index)
        return velocity

    def token_coverage(self, shape, token_index: torch.Tensor) -> torch.Tensor:
        """(1, 1, F, h, w) float: 1 on the latents of the tokens in `token_index`, else 0."""
        _, _, f, h, w = shape
        p = self.transformer.config.patch_size
        keep = torch.zeros(f * (h // p) * (w // p), device=token_index.device)
        keep[token_index] = 1.0
        keep = keep.view(1, 1, f, h // p, w // p)
        return keep.repeat_interleave(p, 3).repeat_interleave(p, 4)

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


def load_cogvideox_pretrained(cfg: dict) -> CogVideoXBackbone:
    """CogVideoX 1.0 checkpoints (2b, 5b; hub id or local diffusers folder) through
    `from_pretrained`: the VAE with its scaling factor, the T5 prompt encoder called as
    `CogVideoXPipeline` calls it (no attention mask, padding kept), the DDPM bridge from the
    scheduler's ᾱ table."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler
    from transformers import AutoTokenizer, T5EncoderModel

    path, revision = str(cfg["path"]), cfg.get("revision")
    device, dtype = resolve_device(cfg.get("device", "auto")), DTYPES[cfg.get("dtype", "bfloat16")]
    vae_dtype = DTYPES[cfg.get("vae_dtype", "float32")]
    common = {"revision": revision, "local_files_only": bool(cfg.get("local_files_only", False))}
    try:
        transformer = CogVideoXTransformer3DModel.from_pretrained(
            path, subfolder="transformer", torch_dtype=dtype, **common)
        vae = AutoencoderKLCogVideoX.from_pretrained(path, subfolder="vae", torch_dtype=vae_dtype, **common)
        text_encoder = T5EncoderModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype, **common)
        tokenizer = AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **common)
        scheduler = CogVideoXDDIMScheduler.from_pretrained(path, subfolder="scheduler", **common)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0]
        raise RuntimeError(f"cannot load CogVideoX checkpoint '{path}' (revision {revision}): {first_line}") from err
    if scheduler.config.prediction_type != "v_prediction":
        raise ValueError(f"{path}: scheduler prediction_type {scheduler.config.prediction_type!r}, "
                         "expected 'v_prediction'")
    return CogVideoXBackbone(
        name=cfg["name"],
        transformer=transformer.to(device).eval(),
        codec=ScaledVAECodec(vae.to(device).eval(), vae.config.temporal_compression_ratio,
                             2 ** (len(vae.config.block_out_channels) - 1)),
        prompt_encoder=PromptEncoder(HFTokenizer(tokenizer), text_encoder.to(device).eval(),
                                     int(cfg.get("max_sequence_length", 226)), masked=False),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"path": path, "revision": revision, "scheduler": dict(scheduler.config)},
        bridge=DDPMBridge(scheduler.alphas_cumprod),
    )
