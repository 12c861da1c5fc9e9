"""Wan self-attention processor that hands post-RoPE K/V to the KV controller.

The controller is any callable `(layer, q, k, v) -> (k, v, attn_mask or None)` over the video
tokens (the engine's `KVController`); Wan's `attn1` sees video tokens only, so it gets them all.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, _get_qkv_projections

from kvlock.engine.controller import RowMasks


def apply_rotary(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Wan's interleaved RoPE. x (B, n, heads, head_dim); freqs (1, n, 1, head_dim)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class KVControlledWanAttnProcessor(WanAttnProcessor):
    """Self-attention (`attn1`) of one Wan block under KV control; cross-attention is untouched.

    1. project q, k, v and normalise q, k; 2. apply RoPE; 3. let the controller capture or fuse
    K/V (and give an attention mask or bias); 4. attend with `dispatch_attention_fn` (group by
    group when the rows' masks differ); 5. project out.
    """

    def __init__(self, controller, layer: int):
        super().__init__()
        self.controller = controller
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            query = apply_rotary(query, *rotary_emb)
            key = apply_rotary(key, *rotary_emb)

        key, value, attention_mask = self.controller(self.layer, query, key, value)

        if isinstance(attention_mask, RowMasks):
            hidden_states = torch.cat([self.attend(query[rows], key[rows], value[rows], mask)
                                       for rows, mask in attention_mask.groups])
        else:
            hidden_states = self.attend(query, key, value, attention_mask)
        hidden_states = hidden_states.flatten(2, 3).type_as(query)
        hidden_states = attn.to_out[0](hidden_states)
        return attn.to_out[1](hidden_states)

    def attend(self, query, key, value, attention_mask):
        """(B, n, heads, head_dim) -> (B, n, heads, head_dim) by diffusers' attention dispatch."""
        return dispatch_attention_fn(query, key, value, attn_mask=attention_mask, dropout_p=0.0,
                                     is_causal=False, backend=self._attention_backend)


def install_kv_control(transformer, controller) -> None:
    """Give every block's `attn1` a KV-controlled processor bound to `controller`."""
    for layer, block in enumerate(transformer.blocks):
        block.attn1.set_processor(KVControlledWanAttnProcessor(controller, layer))


def remove_kv_control(transformer) -> None:
    """Back to diffusers' stock processor on every `attn1`."""
    for block in transformer.blocks:
        block.attn1.set_processor(WanAttnProcessor())
