"""A Wan backbone at a published architecture with seeded random weights (`kind: wan_random`).

For cost at real scale without a download: the transformer is built from the config's full
`transformer` block (e.g. conf/model/wan2.1_t2v_1.3b_random.yaml), directly in the target dtype
(no float32 copy on the way), with the real AutoencoderKLWan class at a small width and a small
seeded UMT5 encoder whose output width is the transformer's `text_dim`.
"""

from __future__ import annotations

import contextlib

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from kvlock.backbones.codec import WanVAECodec
from kvlock.backbones.text import ByteTokenizer, PromptEncoder
from kvlock.backbones.wan import DTYPES, WanBackbone, resolve_device


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Create parameters directly in `dtype` (the peak stays at one copy of the weights)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_text_encoder(cfg: dict, tokenizer: ByteTokenizer):
    """One-layer seeded UMT5 encoder; `d_model` is its output width, `d_kv`·`num_heads` its inner width."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=tokenizer.vocab_size, d_model=cfg["d_model"], d_kv=cfg["d_kv"],
                        d_ff=cfg["d_ff"], num_layers=cfg["num_layers"], num_heads=cfg["num_heads"],
                        relative_attention_num_buckets=8, pad_token_id=tokenizer.pad_id,
                        eos_token_id=tokenizer.eos_id)
    return UMT5EncoderModel(config).eval()


def build_wan_random(cfg: dict) -> WanBackbone:
    device, dtype = resolve_device(cfg.get("device", "auto")), DTYPES[cfg.get("dtype", "bfloat16")]
    torch.manual_seed(int(cfg.get("seed", 0)))
    tokenizer = ByteTokenizer()
    text = cfg["text"]
    transformer_cfg = {**cfg["transformer"], "patch_size": tuple(cfg["transformer"]["patch_size"])}
    if transformer_cfg["text_dim"] != text["d_model"]:
        raise ValueError(f"model.text.d_model={text['d_model']} must equal model.transformer.text_dim="
                         f"{transformer_cfg['text_dim']} (the prompt embeddings' width)")
    text_encoder = build_text_encoder(text, tokenizer)
    vae = AutoencoderKLWan(**cfg["vae"]).eval()
    with default_dtype(dtype), device:  # initialised where it runs: fast on a GPU, one copy
        transformer = WanTransformer3DModel(**transformer_cfg)
    return WanBackbone(
        name=cfg["name"],
        transformer=transformer.to(device).eval(),
        codec=WanVAECodec(vae).to(device),
        prompt_encoder=PromptEncoder(tokenizer, text_encoder.to(device), int(text["max_length"])),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"weights": "seeded-random", "seed": int(cfg.get("seed", 0)), "architecture": cfg["name"]},
    )
