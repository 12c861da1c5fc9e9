"""Wan transformer forward, optionally over a subset of tokens (KV-Edit's fg-only fast path)."""

from __future__ import annotations

import torch

from kvlock.backbones.geometry import token_coords, tokens_box
from kvlock.backbones.prediction import PREDICTIONS, sample_to_velocity


@torch.no_grad()
def wan_forward(transformer, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                token_index: torch.Tensor | None = None, prediction: str = "velocity",
                box: tuple[slice, slice, slice] | None = None) -> torch.Tensor:
    """Velocity of a WanTransformer3DModel, computed for all tokens or only `token_index`.

    latents (B, C, F, h, w); t (B,) in [0, 1]; context (B, L, D); token_index (n,) long or None.
    prediction: what the transformer outputs, "velocity" (Wan) or "sample" (x̂0, converted by
    `sample_to_velocity`). Returns (B, C, F, h, w) float32; tokens outside `token_index` get
    velocity 0. `box` (with `token_index`): patch-aligned (F, h, w) slices that hold every token
    of `token_index` (each once); the output is then that box only, (B, C, *box sizes), so a small mask never
    pays for a zero-filled whole latent. With `token_index=None` this is the stock forward (same
    modules, same order).
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"Unknown prediction '{prediction}'. Available: {', '.join(PREDICTIONS)}")
    # the dtype the patch embedding reads: diffusers' `ModelMixin.dtype` (the first floating-point
    # parameter's, which is this one) without its walk over every module on each call
    dtype = transformer.patch_embedding.weight.dtype
    b, _, f, h, w = latents.shape
    patch = tuple(transformer.config.patch_size)
    pt, ph, pw = patch
    grid = (f // pt, h // ph, w // pw)

    # rows that are one latent expanded over the batch (the editor's CFG rows) are embedded once
    shared = b > 1 and latents.stride(0) == 0
    x = (latents[:1] if shared else latents).to(dtype)
    freqs_cos, freqs_sin = transformer.rope(x)  # (1, N, 1, head_dim) each
    if token_index is None:
        embedded = transformer.patch_embedding(x).flatten(2)  # (B or 1, D, N)
    else:
        freqs_cos, freqs_sin = freqs_cos[:, token_index], freqs_sin[:, token_index]
        token_box = box if box is not None else tokens_box(token_index, grid, patch)
        local = tokens_in_box(token_index, grid, token_box, patch)  # the tokens on the box's grid
        embedded = embed_tokens(transformer.patch_embedding, x, token_box, local)  # (B or 1, D, n)
    hidden = embedded.expand(b, -1, -1).transpose(1, 2).contiguous()  # (B, n, D)

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

    if token_index is None:
        return unpatchify(hidden, grid, patch)
    if box is None:
        return scatter_tokens(hidden, token_index, grid, patch)
    box_grid = tuple((s.stop - s.start) // p for s, p in zip(box, patch))
    if len(token_index) == box_grid[0] * box_grid[1] * box_grid[2]:
        # the tokens fill the box (a rectangular mask), in order: the box is a whole grid
        return unpatchify(hidden, box_grid, patch)
    return scatter_tokens(hidden, local, box_grid, patch)


def unpatchify(hidden: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> torch.Tensor:
    """proj_out's tokens (B, F'·h'·w', pt·ph·pw·C) of a whole token grid -> (B, C, F, h, w)."""
    b = hidden.shape[0]
    out = hidden.reshape(b, *grid, *patch, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)


def scatter_tokens(hidden: torch.Tensor, token_index: torch.Tensor, grid: tuple[int, int, int],
                   patch: tuple[int, int, int]) -> torch.Tensor:
    """proj_out's tokens (B, n, pt·ph·pw·C) of `token_index` on the (F', h', w') token grid ->
    (B, C, F, h, w) with 0 elsewhere: channels first, then each token's latent pixels copied
    straight to their places (one copy of the tokens' outputs, no permute of the whole grid)."""
    b, (pt, ph, pw) = hidden.shape[0], patch
    channels = hidden.shape[-1] // (pt * ph * pw)
    per_channel = hidden.view(b, -1, channels).transpose(1, 2).contiguous()  # (B, C, n·pt·ph·pw)
    out = hidden.new_zeros(b, channels, grid[0] * grid[1] * grid[2] * pt * ph * pw)
    out.index_copy_(2, token_latent_pixels(token_index, grid, patch), per_channel)
    return out.view(b, channels, grid[0] * pt, grid[1] * ph, grid[2] * pw)


def embed_tokens(patch_embedding, x: torch.Tensor, box: tuple[slice, slice, slice],
                 local: torch.Tensor) -> torch.Tensor:
    """Patch embedding of some tokens only: x (B, C, F, h, w), `box` a patch-aligned latent box
    that holds them, `local` (n,) their indices on the box's token grid -> (B, D, n).

    The patch convolution (kernel = stride = patch) runs on the box, so a small mask pays for its
    box instead of the whole clip; each token's output is its own patch's dot product either way
    (equal to the full convolution's, bit for bit, in the fg-only tests)."""
    return patch_embedding(x[(..., *box)]).flatten(2).index_select(2, local)


def token_latent_pixels(token_index: torch.Tensor, grid: tuple[int, int, int],
                        patch: tuple[int, int, int]) -> torch.Tensor:
    """(n,) token indices on the (F', h', w') token grid -> (n·pt·ph·pw,) flat offsets of their
    latent pixels in (F, h, w), token by token in proj_out's order (pt, ph, pw)."""
    (_, gh, gw), (pt, ph, pw) = grid, patch
    h, w = gh * ph, gw * pw
    frame, row, column = token_coords(token_index, grid)
    corner = frame * pt * h * w + row * ph * w + column * pw  # (n,)
    dev = token_index.device
    within = (torch.arange(pt, device=dev)[:, None, None] * h * w
              + torch.arange(ph, device=dev)[None, :, None] * w + torch.arange(pw, device=dev)).flatten()
    return (corner[:, None] + within[None, :]).flatten()


def tokens_in_box(token_index: torch.Tensor, grid: tuple[int, int, int], box: tuple[slice, slice, slice],
                  patch: tuple[int, int, int]) -> torch.Tensor:
    """(n,) token indices on the whole (F', h', w') token grid -> the same tokens' indices on the
    token grid of the patch-aligned latent `box`."""
    (f0, h0, w0) = (s.start // p for s, p in zip(box, patch))
    box_h, box_w = (box[1].stop - box[1].start) // patch[1], (box[2].stop - box[2].start) // patch[2]
    frame, row, column = token_coords(token_index, grid)
    return ((frame - f0) * box_h + row - h0) * box_w + column - w0
