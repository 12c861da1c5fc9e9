"""Attention masks for joint attention over text and video tokens.

The KV controller speaks of video tokens only: it returns no mask, an additive bias over the video
keys (B, 1, 1, n_k), a boolean video-query × video-key mask (1, 1, n_q, n_k), or `RowMasks` (one
of those per group of batch rows: KV-Edit's attention mask on the source rows only). Joint-attention
backbones (CogVideoX: [text; video], HunyuanVideo: [video; text]) widen it to the whole sequence:
text keys stay visible to every query (their bias 0) unless the model masks padded text, and text
queries see every key.
"""

from __future__ import annotations

import torch

from kvlock.engine.controller import RowMasks


def joint_attention_mask(video_mask: torch.Tensor | None, n_text: int, text_first: bool,
                         n_video_q: int, n_video_k: int, dtype: torch.dtype,
                         text_valid: torch.Tensor | None = None) -> torch.Tensor | None:
    """-> additive mask (B or 1, 1, n_text + n_video_q, n_text + n_video_k) in `dtype`, or None.

    text_valid: (B, n_text) bool, False = padded text token hidden from every query.
    """
    if isinstance(video_mask, RowMasks):
        video_mask = per_row_bias(video_mask, n_video_q, n_video_k, dtype)
    if video_mask is None and text_valid is None:
        return None
    device = (video_mask if video_mask is not None else text_valid).device
    batch = max(m.shape[0] for m in (video_mask, text_valid) if m is not None)
    bias = torch.zeros(batch, 1, n_text + n_video_q, n_text + n_video_k, device=device, dtype=dtype)
    video_q = slice(n_text, None) if text_first else slice(0, n_video_q)
    video_k = slice(n_text, None) if text_first else slice(0, n_video_k)
    text_k = slice(0, n_text) if text_first else slice(n_video_k, None)
    if video_mask is not None:
        if video_mask.dtype == torch.bool:
            video_mask = torch.zeros(video_mask.shape, device=device, dtype=dtype).masked_fill(
                ~video_mask, float("-inf"))
        bias[:, :, video_q, video_k] += video_mask.to(dtype)
    if text_valid is not None:
        hidden = torch.zeros(text_valid.shape, device=device, dtype=dtype).masked_fill(
            ~text_valid.bool(), float("-inf"))
        bias[:, :, :, text_k] += hidden[:, None, None, :]
    return bias


def per_row_bias(row_masks: RowMasks, n_q: int, n_k: int, dtype: torch.dtype) -> torch.Tensor | None:
    """RowMasks -> one additive video mask (B, 1, n_q, n_k): each group's bias or boolean mask on
    its own rows (a joint attention runs every row in one call, so the groups are materialised)."""
    present = [m for _, m in row_masks.groups if m is not None]
    if not present:
        return None
    batch = max(rows.stop for rows, _ in row_masks.groups)
    bias = torch.zeros(batch, 1, n_q, n_k, device=present[0].device, dtype=dtype)
    for rows, mask in row_masks.groups:
        if mask is None:
            continue
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, device=mask.device, dtype=dtype).masked_fill(~mask, float("-inf"))
        bias[rows] += mask.to(dtype)
    return bias
