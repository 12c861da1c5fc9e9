"""Sampler equality with diffusers: a tiny saved WanPipeline (real classes, seeded random weights)
and the engine's generation loop (KV control off) on the same initial noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def save_tiny_pipeline(path):
    """A tiny WanPipeline (real classes, seeded random weights) saved the diffusers way."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    words = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "square", "circle", "on", "floor"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32,
                                               num_layers=1, num_heads=2, relative_attention_num_buckets=8)).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 2.0, 0.5, 1.0])
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=4, out_channels=4, text_dim=16, freq_dim=32, ffn_dim=32,
                                        num_layers=2)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(path)
    return pipe


def generation_config(steps: int, shift: float, scale: float, grid: str = "diffusers"):
    """Pure generation: start from the noise at t=1, no source K/V, no paste-back."""
    from kvlock.engine.config import EditConfig

    rule = "cfg" if scale > 1 else "none"
    return EditConfig(steps=steps, shift=shift, timestep_grid=grid, source="noised", init="noised",
                      bg_kv="none", compose="none", guidance={"rule": rule, "scale": scale})


def pipeline_equivalence(root: str | Path, steps: int = 6, shift: float = 3.0,
                         scale: float = 5.0) -> dict:
    """Save the tiny pipeline under `root`, load it as an engine backbone, generate with both from
    the same noise. -> {"max_abs": latent max |Δ|, "frames_max_lsb": uint8 frame max |Δ|, ...}."""
    from kvlock.backbones.wan import load_wan_pretrained
    from kvlock.data.sample import EditSample
    from kvlock.engine.editor import Editor, run_edit

    path = Path(root) / "wan-tiny-pipeline"
    pipe = save_tiny_pipeline(path)
    backbone = load_wan_pretrained({"name": "saved", "path": str(path), "device": "cpu", "dtype": "float32",
                                    "max_sequence_length": 8, "local_files_only": True})
    frames = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros(frames.shape[:3], bool)
    mask[:, 8:24, 8:24] = True
    sample = EditSample("gen", "gen", frames, mask, "a red square", "a blue circle on floor", "generate")
    cfg = generation_config(steps, shift, scale)
    noise = Editor(backbone, sample, cfg, seed=0).noise
    out = run_edit(backbone, sample, cfg, seed=0)
    call = dict(prompt=sample.target_prompt, negative_prompt="", height=32, width=32, num_frames=5,
                num_inference_steps=steps, guidance_scale=scale, max_sequence_length=8)
    ref = pipe(**call, latents=noise.clone(), output_type="latent").frames
    ref_frames = pipe(**call, latents=noise.clone(), output_type="np").frames[0]  # (T, H, W, 3) in [0, 1]
    ref_u8 = np.round(ref_frames * 255).astype(np.int16)
    linear = run_edit(backbone, sample, generation_config(steps, shift, scale, "linear"), seed=0)
    return {
        "max_abs": float((out.latents - ref).abs().max()),
        "frames_max_lsb": int(np.abs(out.frames.astype(np.int16) - ref_u8).max()),
        "linear_grid_max_abs": float((linear.latents - ref).abs().max()),
        "steps": steps, "shift": shift, "guidance_scale": scale,
        "scheduler": "FlowMatchEulerDiscreteScheduler",
    }
