"""A UMT5 encoder that also knows where each token stands (learned absolute positions).

T5's only positional signal is a relative bias inside self-attention, and the DiT's
cross-attention treats the text tokens as a set. A small jointly-trained encoder then learns a bag
of words: the toy model could not tell "a red circle over a white and green background" from "a
white circle over a red and green background" (its velocity moved by 6e-4, against 0.018 when
the shape word changed). Adding a learned position embedding to the token embeddings (as BERT
and CLIP do) hands the encoder, and through it the DiT, each word's role in the sentence.
"""

from __future__ import annotations

import torch
from transformers import UMT5Config, UMT5EncoderModel


class UMT5EncoderWithPositions(UMT5EncoderModel):
    """UMT5EncoderModel + `position_embedding` (max_length, d_model), zero-initialised (so it starts
    as the plain encoder) and added to the token embeddings."""

    def __init__(self, config: UMT5Config, max_length: int):
        super().__init__(config)
        self.position_embedding = torch.nn.Embedding(max_length, config.d_model)
        torch.nn.init.zeros_(self.position_embedding.weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """input_ids (B, L) long, L ≤ max_length -> BaseModelOutput, last_hidden_state (B, L, d_model)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        embeds = self.shared(input_ids) + self.position_embedding(positions)[None]
        return super().forward(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
