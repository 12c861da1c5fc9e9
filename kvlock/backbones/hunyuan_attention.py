"""HunyuanVideo attention processor that hands the video tokens' post-RoPE K/V to the controller.

HunyuanVideo runs FLUX-style dual-stream blocks (video through `to_q/k/v`, text through
`add_q/k/v_proj`, one joint attention over [video; text]) and then single-stream blocks (one
projection over the concatenated [video; text]). In both, only the video part of q, k, v reaches
the controller; text K/V are never locked or fused. Matches diffusers'
`HunyuanVideoAttnProcessor2_0.__call__` (transformer_hunyuan_video.py) step for step.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoAttnProcessor2_0

from kvlock.backbones.joint_mask import joint_attention_mask


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(2, (heads, -1))  # (B, L, heads, head_dim)


class KVControlledHunyuanAttnProcessor(HunyuanVideoAttnProcessor2_0):
    """`attn` of one dual- or single-stream HunyuanVideo block under KV control."""

    def __init__(self, controller, layer: int):
        super().__init__()
        self.controller = controller
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None):
        n_text = encoder_hidden_states.shape[1]
        n_video = hidden_states.shape[1]
        single_stream = attn.add_q_proj is None
        source = torch.cat([hidden_states, encoder_hidden_states], dim=1) if single_stream else hidden_states
        q, k, v = (_heads(proj(source), attn.heads) for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if single_stream:
            (q, q_text), (k, k_text), (v, v_text) = (x.split([n_video, n_text], dim=1) for x in (q, k, v))
        else:
            q_text, k_text, v_text = (_heads(proj(encoder_hidden_states), attn.heads)
                                      for proj in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
            if attn.norm_added_q is not None:
                q_text = attn.norm_added_q(q_text)
            if attn.norm_added_k is not None:
                k_text = attn.norm_added_k(k_text)
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)

        k, v, video_mask = self.controller(self.layer, q, k, v)
        text_valid = attention_mask[:, 0, 0, -n_text:] if attention_mask is not None else None
        mask = joint_attention_mask(video_mask, n_text, False, n_video, k.shape[1], q.dtype, text_valid)
        out = dispatch_attention_fn(
            torch.cat([q, q_text], dim=1),
            torch.cat([k, k_text], dim=1),
            torch.cat([v, v_text], dim=1),
            attn_mask=mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
        )
        out = out.flatten(2, 3).to(q.dtype)
        video_out, text_out = out[:, :n_video], out[:, n_video:]
        if getattr(attn, "to_out", None) is not None:
            video_out = attn.to_out[1](attn.to_out[0](video_out))
        if getattr(attn, "to_add_out", None) is not None:
            text_out = attn.to_add_out(text_out)
        return video_out, text_out


def attention_layers(transformer) -> list:
    """Dual-stream blocks first, then single-stream blocks: layer i of the K/V store."""
    return [block.attn for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]]


def install_kv_control(transformer, controller) -> None:
    """Give every dual- and single-stream block's `attn` a KV-controlled processor."""
    for layer, attn in enumerate(attention_layers(transformer)):
        attn.set_processor(KVControlledHunyuanAttnProcessor(controller, layer))


def remove_kv_control(transformer) -> None:
    """Back to diffusers' stock processor everywhere."""
    for attn in attention_layers(transformer):
        attn.set_processor(HunyuanVideoAttnProcessor2_0())
