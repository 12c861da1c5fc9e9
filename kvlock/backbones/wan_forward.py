"""Wan transformer forward, optionally over a subset of tokens (KV-Edit's fg-only fast path)."""

from __future__ import annotations

import torch

from kvlock.backbones.prediction import PREDICTIONS, sample_to_velocity


@torch.no_grad()
def wan_forward(transformer, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                token_index: torch.Tensor | None = None, prediction: str = "velocity") -> torch.Tensor:
    """Velocity of a WanTransformer3DModel, computed for all tokens or only `token_index`.

    latents (B, C, F, h, w); t (B,) in [0, 1]; context (B, L, D); token_index (n,) long or None.
    prediction: what the transformer outputs, "velocity" (Wan) or "sample" (x̂0, converted by
    `sample_to_velocity`). Returns (B, C, F, h, w) float32; tokens outside `token_index` get
    velocity 0. With `token_index=None` this is the stock forward (same modules, same order).
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"Unknown prediction '{prediction}'. Available: {', '.join(PREDICTIONS)}")
    dtype = transformer.dtype
    b, _, f, h, w = latents.shape
    pt, ph, pw = transformer.config.patch_size
    grid = (f // pt, h // ph, w // pw)

    x = latents.to(dtype)
    freqs_cos, freqs_sin = transformer.rope(x)  # (1, N, 1, head_dim) each
    hidden = transformer.patch_embedding(x).flatten(2).transpose(1, 2).contiguous()  # (B, N, D)
    if token_index is not None:
        freqs_cos, freqs_sin = freqs_cos[:, token_index], freqs_sin[:, token_index]
        hidden = hidden[:, token_index]

    temb, proj, context, _ = transformer.condition_embedder(t.to(latents.device) * 1000.0, context, None)
    proj = proj.unflatten(1, (6, -1))
    for block in transformer.blocks:
        hidden = block(hidden, context, proj, (freqs_cos, freqs_sin))

    shift, scale = (transformer.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    hidden = (transformer.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden)
    hidden = transformer.proj_out(hidden).float()  # (B, n, pt·ph·pw·C)
    if prediction == "sample":
        tokens = latents.float().reshape(b, -1, grid[0], pt, grid[1], ph, grid[2], pw)
        tokens = tokens.permute(0, 2, 4, 6, 3, 5, 7, 1).flatten(4).flatten(1, 3)  # (B, N, pt·ph·pw·C)
        if token_index is not None:
            tokens = tokens[:, token_index]
        hidden = sample_to_velocity(hidden, tokens, t.to(latents.device))

    if token_index is not None:
        full = hidden.new_zeros(b, grid[0] * grid[1] * grid[2], hidden.shape[-1])
        full[:, token_index] = hidden
        hidden = full
    out = hidden.reshape(b, *grid, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
