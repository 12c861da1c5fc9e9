"""Prompt encoders: a UMT5 encoder behind a file-free byte or word tokenizer, or a HF tokenizer."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch


class FileFreeTokenizer:
    """Shared by the byte and word tokenizers: 0 = pad, 1 = end of sequence, ids from `encode`."""

    pad_id = 0
    eos_id = 1

    def encode(self, prompt: str) -> list[int]:
        raise NotImplementedError

    def __call__(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids (B, max_length) long (truncated, end of sequence kept), attention mask (B, max_length) long."""
        ids = torch.full((len(prompts), max_length), self.pad_id, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens = self.encode(prompt)[: max_length - 1] + [self.eos_id]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids, (ids != self.pad_id).long()


class ByteTokenizer(FileFreeTokenizer):
    """UTF-8 bytes as token ids (byte + 3). Needs no files."""

    vocab_size = 259

    def encode(self, prompt: str) -> list[int]:
        return [b + 3 for b in prompt.encode("utf-8")]


class WordTokenizer(FileFreeTokenizer):
    """Lower-cased words of a fixed vocabulary as token ids (word index + 3; 2 = a word outside
    the vocabulary). A closed world's words, one token each."""

    unk_id = 2

    def __init__(self, vocabulary: Sequence[str]):
        words = [w.lower() for w in vocabulary]
        if len(set(words)) != len(words):
            raise ValueError("the word tokenizer's vocabulary lists a word twice")
        self.ids = {w: i + 3 for i, w in enumerate(words)}
        self.vocab_size = len(words) + 3

    def encode(self, prompt: str) -> list[int]:
        return [self.ids.get(w, self.unk_id) for w in re.findall(r"[a-z]+", prompt.lower())]


class HFTokenizer:
    """A `transformers` tokenizer called the way `WanPipeline` calls it."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return out.input_ids, out.attention_mask


class PromptEncoder(torch.nn.Module):
    """Prompts -> (B, max_length, D) embeddings, zeroed past each prompt's length (as WanPipeline)."""

    def __init__(self, tokenizer, encoder, max_length: int, masked: bool = True):
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_length = max_length
        self.masked = masked  # False: no attention mask, padding kept (as CogVideoXPipeline)

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids, mask = self.tokenizer([p.strip() for p in prompts], self.max_length)
        device = self.encoder.device
        if not self.masked:
            return self.encoder(ids.to(device)).last_hidden_state
        hidden = self.encoder(ids.to(device), mask.to(device)).last_hidden_state
        return hidden * mask.to(device)[..., None].to(hidden.dtype)
