"""CogVideoX joint-attention processor that hands the video tokens' post-RoPE K/V to the controller.

CogVideoX attends once over [text; video]; only the video part of q, k, v reaches the controller
(text K/V are never locked or fused), and the controller's mask is widened by `joint_attention_mask`.
Matches diffusers' `CogVideoXAttnProcessor2_0.__call__` (attention_processor.py) step for step:
joint projection, per-head LayerNorm of q and k, 3D RoPE on the video part, SDPA, output projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from diffusers.models.embeddings import apply_rotary_emb

from kvlock.backbones.joint_mask import joint_attention_mask


class KVControlledCogVideoXAttnProcessor(CogVideoXAttnProcessor2_0):
    """`attn1` of one CogVideoX block under KV control."""

    def __init__(self, controller, layer: int):
        super().__init__()
        self.controller = controller
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None,
                 image_rotary_emb=None):
        if attention_mask is not None:
            raise ValueError("KV-controlled CogVideoX attention takes no attention_mask argument")
        n_text = encoder_hidden_states.size(1)
        joint = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        heads = attn.heads
        # (B, heads, L, head_dim) each
        query, key, value = (proj(joint).unflatten(2, (heads, -1)).transpose(1, 2)
                             for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query[:, :, n_text:] = apply_rotary_emb(query[:, :, n_text:], image_rotary_emb)
            key[:, :, n_text:] = apply_rotary_emb(key[:, :, n_text:], image_rotary_emb)

        video = [x[:, :, n_text:].transpose(1, 2) for x in (query, key, value)]  # (B, n, heads, d)
        video_k, video_v, video_mask = self.controller(self.layer, *video)
        key = torch.cat([key[:, :, :n_text], video_k.transpose(1, 2)], dim=2)
        value = torch.cat([value[:, :, :n_text], video_v.transpose(1, 2)], dim=2)
        mask = joint_attention_mask(video_mask, n_text, True, video[0].shape[1], video_k.shape[1],
                                    query.dtype)

        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0,
                                             is_causal=False)
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).flatten(2)))
        return out[:, n_text:], out[:, :n_text]


def install_kv_control(transformer, controller) -> None:
    """Give every block's `attn1` a KV-controlled processor bound to `controller`."""
    for layer, block in enumerate(transformer.transformer_blocks):
        block.attn1.set_processor(KVControlledCogVideoXAttnProcessor(controller, layer))


def remove_kv_control(transformer) -> None:
    """Back to diffusers' stock processor on every `attn1`."""
    for block in transformer.transformer_blocks:
        block.attn1.set_processor(CogVideoXAttnProcessor2_0())
