"""The backbone interface the engine talks to, and the parts every backbone shares.

A backbone turns frames into latents and back (`encode_video` / `decode_latents`, (T, H, W, 3)
uint8 <-> (1, C, F, h, w) float32), prompts into the transformer's text conditioning
(`encode_prompt`) and, where the model takes more than a prompt, the edit itself
(`condition_on`), says how latents are cut into video tokens (`geometry`, tokens flattened in
(frame, row, column) order) and runs its transformer as a flow-matching velocity predictor
(`velocity`, x_t = (1 − t)·z0 + t·ε, v = ε − z0), optionally over a subset of video tokens.
`install_kv_control(controller)` routes the post-RoPE q, k, v of the video tokens of every
self- or joint-attention layer through `controller(layer, q, k, v) -> (k, v, attn_mask)`;
text tokens never reach the controller. Layout-specific code (where text sits, how RoPE is
applied) lives in each backbone's own modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kvlock.backbones.geometry import LatentGeometry
from kvlock.backbones.text import PromptEncoder


@dataclass
class VideoBackbone:
    """A transformer with a codec and a prompt encoder. Subclasses give `patch_size`,
    `num_layers`, `inner_dim`, `ffn_dim`, `velocity` and the K/V control hooks."""

    name: str
    transformer: torch.nn.Module
    codec: torch.nn.Module
    prompt_encoder: PromptEncoder
    device: torch.device
    dtype: torch.dtype
    negative_prompt: str = ""
    prediction: str = "velocity"  # what the transformer outputs: "velocity" or "sample" (x̂0)
    info: dict = field(default_factory=dict)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        raise NotImplementedError

    @property
    def ffn_dim(self) -> int:
        """Hidden width of the blocks' feed-forward (the memory estimate's activations)."""
        raise NotImplementedError

    @property
    def geometry(self) -> LatentGeometry:
        return LatentGeometry(
            temporal_factor=self.codec.temporal_factor,
            spatial_factor=self.codec.spatial_factor,
            patch_size=self.patch_size,
            latent_channels=self.codec.latent_channels,
        )

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (1, C, F, h, w) float32 latents on the device."""
        self.geometry.latent_shape(*frames.shape[:3])  # clear error on invalid sizes
        return self.codec.encode(frames).to(self.device, torch.float32)

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """(1, C, F, h, w) -> (T, H, W, 3) uint8."""
        return self.codec.decode(latents)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """-> (B, L, D) prompt embeddings in the transformer's dtype."""
        return self.prompt_encoder(prompts).to(self.device, self.dtype)

    conditioning = "none"  # the `method.conditioning` this backbone reads (VACE: "vace")

    def condition_on(self, sample) -> None:
        """Per-edit conditioning beyond the prompt (VACE's masked source video); none here."""

    def velocity(self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                 token_index: torch.Tensor | None = None) -> torch.Tensor:
        """latents (B, C, F, h, w), t (B,) in [0, 1], context (B, L, D), token_index (n,) video
        tokens to run (fg-only; the others get velocity 0) -> (B, C, F, h, w) float32."""
        raise NotImplementedError

    def velocity_in_box(self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                        token_index: torch.Tensor, box: tuple[slice, slice, slice]) -> torch.Tensor:
        """fg-only `velocity` of the latent `box` alone, patch-aligned (F, h, w) slices that hold
        every token of `token_index` -> (B, C, *box sizes). This default crops the whole output;
        a backbone may write the box directly (Wan does)."""
        return self.velocity(latents, t, context, token_index)[(..., *box)]

    def install_kv_control(self, controller) -> None:
        raise NotImplementedError

    def remove_kv_control(self) -> None:
        raise NotImplementedError
