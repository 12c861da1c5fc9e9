"""Attention masks for joint attention over text and video tokens.

The KV controller speaks of video tokens only: it returns no mask, an additive bias over the video
keys (B, 1, 1, n_k) or a boolean video-query × video-key mask (1, 1, n_q, n_k). Joint-attention
backbones (CogVideoX: [text; video], HunyuanVideo: [video; text]) widen it to the whole sequence:
text keys stay visible to every query (their bias 0) unless the model masks padded text, and text
queries see every key.
"""

from __future__ import annotations

import torch


def joint_attention_mask(video_mask: torch.Tensor | None, n_text: int, text_first: bool,
                         n_video_q: int, n_video_k: int, dtype: torch.dtype,
                         text_valid: torch.Tensor | None = None) -> torch.Tensor | None:
    """-> additive mask (B or 1, 1, n_text + n_video_q, n_text + n_video_k) in `dtype`, or None.

    text_valid: (B, n_text) bool, False = padded text token hidden from every query.
    """
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
