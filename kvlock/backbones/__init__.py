"""Backbone adapters: encode/decode video, encode prompts, token geometry, transformer forward.

`geometry` is imported eagerly (data preparation needs it); the Wan adapter, which imports
diffusers and transformers, only when a backbone is built.
"""

from __future__ import annotations

from kvlock.backbones.geometry import FrameRules, LatentGeometry


def build_backbone(cfg):
    """Build the backbone a `conf/model/*.yaml` describes (`kind` selects the builder)."""
    from omegaconf import DictConfig, OmegaConf

    from kvlock.backbones.cogvideox import build_cogvideox_tiny, load_cogvideox_pretrained
    from kvlock.backbones.hunyuan import build_hunyuan_tiny, load_hunyuan_pretrained
    from kvlock.backbones.vace import build_wan_vace_tiny, load_wan_vace_pretrained
    from kvlock.backbones.wan import build_wan_tiny, load_wan_pretrained
    from kvlock.backbones.wan_random import build_wan_random

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    builders = {
        "wan_tiny": build_wan_tiny,
        "wan_pretrained": load_wan_pretrained,
        "wan_random": build_wan_random,
        "cogvideox_tiny": build_cogvideox_tiny,
        "cogvideox_pretrained": load_cogvideox_pretrained,
        "hunyuan_tiny": build_hunyuan_tiny,
        "hunyuan_pretrained": load_hunyuan_pretrained,
        "wan_vace_tiny": build_wan_vace_tiny,
        "wan_vace_pretrained": load_wan_vace_pretrained,
    }
    kind = cfg.get("kind")
    if kind not in builders:
        raise ValueError(f"Unknown model kind '{kind}'. Available: {', '.join(sorted(builders))}")
    return builders[kind](cfg)


__all__ = ["FrameRules", "LatentGeometry", "build_backbone"]
