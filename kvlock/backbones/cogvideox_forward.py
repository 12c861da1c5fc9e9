"""CogVideoX transformer forward, optionally over a subset of video tokens (fg-only fast path).

Follows `CogVideoXTransformer3DModel.forward` (diffusers, cogvideox_transformer_3d.py) and the 3D
RoPE of `CogVideoXPipeline._prepare_rotary_positional_embeddings` (pipeline_cogvideox.py), with
one change: after the joint patch embedding, only the video tokens in `token_index` (and their RoPE
rows) go through the blocks; the text tokens always do.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid


def cogvideox_rope(transformer, frames: int, rows: int, cols: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """3D RoPE (cos, sin), each (F·h'·w', head_dim), for a token grid of (frames, rows, cols)."""
    cfg = transformer.config
    p = cfg.patch_size
    crops = get_resize_crop_region_for_grid((rows, cols), cfg.sample_width // p, cfg.sample_height // p)
    return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=crops,
                                   grid_size=(rows, cols), temporal_size=frames, device=device)


@torch.no_grad()
def cogvideox_forward(transformer, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                      token_index: torch.Tensor | None = None) -> torch.Tensor:
    """Output of a CogVideoXTransformer3DModel for all video tokens or only `token_index`.

    latents (B, C, F, h, w) (the engine's layout; CogVideoX's own is (B, F, C, h, w)); timestep
    (B,) the model's own time (0 … 1000); context (B, L, D). -> (B, C, F, h, w) float32, 0 outside `token_index`.
    """
    cfg = transformer.config
    if cfg.patch_size_t is not None:
        raise ValueError("CogVideoX 1.5 (temporal patches, patch_size_t) is not supported; use 1.0 (2b/5b)")
    dtype = transformer.dtype
    b, _, f, h, w = latents.shape
    p = cfg.patch_size
    x = latents.to(dtype).permute(0, 2, 1, 3, 4)  # (B, F, C, h, w)

    emb = transformer.time_embedding(transformer.time_proj(timestep.to(latents.device)).to(dtype))
    joint = transformer.patch_embed(context.to(dtype), x)  # (B, L + N, D)
    n_text = context.shape[1]
    text, video = joint[:, :n_text], joint[:, n_text:]
    rope = cogvideox_rope(transformer, f, h // p, w // p, latents.device) if cfg.use_rotary_positional_embeddings \
        else None
    if token_index is not None:
        video = video[:, token_index]
        rope = (rope[0][token_index], rope[1][token_index]) if rope is not None else None
    for block in transformer.transformer_blocks:
        video, text = block(hidden_states=video, encoder_hidden_states=text, temb=emb, image_rotary_emb=rope)
    video = transformer.norm_final(video)
    video = transformer.norm_out(video, temb=emb)
    video = transformer.proj_out(video).float()  # (B, n, C·p·p)
    if token_index is not None:
        full = video.new_zeros(b, f * (h // p) * (w // p), video.shape[-1])
        full[:, token_index] = video
        video = full
    out = video.reshape(b, f, h // p, w // p, -1, p, p).permute(0, 4, 1, 2, 5, 3, 6)  # (B, C, F, h', p, w', p)
    return out.flatten(5, 6).flatten(3, 4)
