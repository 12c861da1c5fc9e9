"""The trained model's config, weights and EMA: what training loads, grows, swaps and saves."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import OmegaConf

from kvlock.backbones.wan import resolve_repo_path


def load_model_config(cfg):
    """`model_config` with `model_overrides` merged over it (e.g. an earlier stage's architecture)."""
    return OmegaConf.merge(OmegaConf.load(resolve_repo_path(cfg.model_config)), cfg.get("model_overrides") or {})


def identity_blocks(transformer, missing: list[str]) -> list[int]:
    """Zero the residual outputs of transformer blocks that `missing` names entirely (a deeper
    model warm-started from a shallower one), so the grown model starts out computing exactly what
    the loaded one did. -> the indices of those blocks."""
    grown = []
    for i, block in enumerate(transformer.blocks):
        if all(f"transformer.blocks.{i}.{name}" in missing for name, _ in block.named_parameters()):
            for layer in (block.attn1.to_out[0], block.attn2.to_out[0], block.ffn.net[2]):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
            grown.append(i)
    return grown


def save_weights(backbone, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"transformer.{k}": v for k, v in backbone.transformer.state_dict().items()}
    tensors |= {f"text_encoder.{k}": v for k, v in backbone.prompt_encoder.encoder.state_dict().items()}
    save_file({k: v.detach().float().cpu().clone() for k, v in tensors.items()}, str(path))


@contextmanager
def ema_weights(backbone, ema: dict | None):
    """Swap the EMA modules into the backbone for sampling (`ema` None: keep its own)."""
    live = (backbone.transformer, backbone.prompt_encoder.encoder)
    if ema is not None:
        backbone.transformer, backbone.prompt_encoder.encoder = ema["transformer"], ema["text_encoder"]
    try:
        yield backbone
    finally:
        backbone.transformer, backbone.prompt_encoder.encoder = live
