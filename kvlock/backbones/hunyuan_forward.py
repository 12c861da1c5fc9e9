"""HunyuanVideo transformer forward, optionally over a subset of video tokens (fg-only fast path).

Follows `HunyuanVideoTransformer3DModel.forward` (diffusers, transformer_hunyuan_video.py) with one
change: after patch embedding, only the video tokens in `token_index` (and their RoPE rows) go
through the dual- and single-stream blocks; the text tokens always do.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def hunyuan_forward(transformer, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                    pooled: torch.Tensor, token_index: torch.Tensor | None = None,
                    guidance: float | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Output of a HunyuanVideoTransformer3DModel for all video tokens or only `token_index`.

    latents (B, C, F, h, w); t (B,) in [0, 1], fed as t·1000; context (B, L, D) text tokens;
    text_mask (B, L) 1 = real token, 0 = padding hidden from every query (None: all real);
    pooled (B, P) pooled prompt projection; guidance: the embedded guidance scale of
    guidance-distilled checkpoints (fed ·1000 as the pipeline does). -> (B, C, F, h, w) float32.
    """
    cfg = transformer.config
    dtype = transformer.dtype
    b, _, f, h, w = latents.shape
    p, pt = cfg.patch_size, cfg.patch_size_t
    grid = (f // pt, h // p, w // p)
    x = latents.to(dtype)
    timestep = t.to(latents.device) * 1000.0
    guidance_in = None
    if cfg.guidance_embeds:
        if guidance is None:
            raise ValueError("this HunyuanVideo checkpoint embeds guidance: set model.embedded_guidance")
        guidance_in = torch.full((b,), float(guidance) * 1000.0, device=latents.device, dtype=dtype)

    rope = transformer.rope(x)  # (cos, sin), each (N, head_dim)
    temb, token_replace = transformer.time_text_embed(timestep, pooled.to(dtype), guidance_in)
    video = transformer.x_embedder(x)  # (B, N, D)
    attention_mask = None
    if text_mask is None:
        text_mask = torch.ones(context.shape[:2], device=latents.device, dtype=torch.long)
    text = transformer.context_embedder(context.to(dtype), timestep, text_mask)
    if token_index is not None:
        video = video[:, token_index]
        rope = (rope[0][token_index], rope[1][token_index])
    if not bool(text_mask.bool().all()):  # [video; text] key mask, as the stock forward builds it
        video_keys = torch.ones(b, video.shape[1], device=latents.device, dtype=torch.bool)
        attention_mask = torch.cat([video_keys, text_mask.bool()], dim=1)[:, None, None, :]
    first_frame_tokens = grid[1] * grid[2]
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        video, text = block(video, text, temb, attention_mask, rope, token_replace, first_frame_tokens)
    video = transformer.norm_out(video, temb)
    video = transformer.proj_out(video).float()  # (B, n, C·pt·p·p)
    if token_index is not None:
        full = video.new_zeros(b, grid[0] * grid[1] * grid[2], video.shape[-1])
        full[:, token_index] = video
        video = full
    out = video.reshape(b, *grid, -1, pt, p, p).permute(0, 4, 1, 5, 2, 6, 3, 7)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
