"""Backbone adapters: encode/decode video, encode prompts, token geometry, transformer forward."""

from __future__ import annotations

from kvlock.backbones.geometry import FrameRules, LatentGeometry
from kvlock.backbones.wan import WanBackbone, build_wan_tiny, load_wan_pretrained

BACKBONE_BUILDERS = {"wan_tiny": build_wan_tiny, "wan_pretrained": load_wan_pretrained}


def build_backbone(cfg) -> WanBackbone:
    """Build the backbone a `conf/model/*.yaml` describes (`kind` selects the builder)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    kind = cfg.get("kind")
    if kind not in BACKBONE_BUILDERS:
        raise ValueError(f"Unknown model kind '{kind}'. Available: {', '.join(sorted(BACKBONE_BUILDERS))}")
    return BACKBONE_BUILDERS[kind](cfg)


__all__ = ["FrameRules", "LatentGeometry", "WanBackbone", "build_backbone"]
