"""DINO ViT-B/16 for VBench subject consistency, from the torch hub cache only.

Needs both the hub repo folder `<hub dir>/facebookresearch_dino_main` (code) and the checkpoint
`<hub dir>/checkpoints/dino_vitbase16_pretrain.pth` (catalog entry `dino-vitb16`; fetched on first
use unless offline). torchvision has no DINO, so with
`allow_random_weights` a seeded random torchvision ViT stands in: `vit_b_16` (the DINO
architecture, 224x224 input) or `vit_tiny` (2 layers, 64x64 input, for tests).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.models import VisionTransformer, vit_b_16

from kvlock.metrics.weights import (
    LoadedModel,
    WeightsUnavailable,
    fetch_hint,
    load_or_random,
    load_state_dict,
    model_file,
)
from kvlock.weights import entry, hub_repo_dir

DINO = "DINO ViT-B/16"
DINO_WEIGHTS = "dino-vitb16"  # checkpoint + torch hub code repo facebookresearch/dino:main
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RANDOM_ARCHS = {
    "vit_b_16": lambda: vit_b_16(weights=None),
    "vit_tiny": lambda: VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
    ),
}


@dataclass(frozen=True)
class SubjectModel:
    """An image -> (D,) feature model; `square` is the fixed input size of a torchvision stand-in
    (None for DINO, which takes the VBench short-side-224 resize at any aspect)."""

    loaded: LoadedModel
    square: int | None
    device: torch.device
    batch_size: int

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        """VBench `dino_transform`: (T, H, W, 3) uint8 -> bilinear resize without
        antialiasing (current VBench; short side 224, or the stand-in's square size), /255, ImageNet mean/std."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # uint8, as VBench
        size = [224] if self.square is None else [self.square, self.square]
        x = TF.resize(x, size, antialias=False).float()
        return TF.normalize(x / 255.0, IMAGENET_MEAN, IMAGENET_STD)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, D) L2-normalised CLS features on CPU."""
        model = self.loaded.module
        out = [model(b.to(self.device)).float() for b in self.pixels(frames).split(self.batch_size)]
        return F.normalize(torch.cat(out), dim=-1).cpu()


@functools.lru_cache(maxsize=2)
def load_subject_model(
    random_arch: str,
    *,
    allow_random: bool,
    seed: int,
    weights_dir: str | None,
    device: torch.device,
    batch_size: int,
    offline: bool,
) -> SubjectModel:
    """DINO ViT-B/16 from the hub cache (code and checkpoint fetched on first use unless
    offline); else (if allowed) the seeded random `random_arch`."""
    checkpoint = model_file(DINO_WEIGHTS, weights_dir, offline)
    if checkpoint is not None:
        loaded = load_or_random(
            DINO,
            checkpoint,
            functools.partial(_hub_dino, hub_repo_dir(entry(DINO_WEIGHTS).hub_repo, weights_dir)),
            allow_random=False,
            seed=seed,
            device=device,
        )
        return SubjectModel(loaded, None, device, batch_size)
    if not allow_random:
        raise WeightsUnavailable(DINO, fetch_hint(DINO_WEIGHTS))
    loaded = load_or_random(
        f"torchvision {random_arch} standing in for {DINO}",
        None,
        lambda _: _random_vit(random_arch),
        allow_random=True,
        seed=seed,
        device=device,
    )
    return SubjectModel(loaded, loaded.module.image_size, device, batch_size)


def _hub_dino(repo: Path, checkpoint: Path) -> torch.nn.Module:
    model = torch.hub.load(str(repo), "dino_vitb16", source="local", pretrained=False)
    model.load_state_dict(load_state_dict(checkpoint))
    return model


def _random_vit(arch: str) -> torch.nn.Module:
    model = RANDOM_ARCHS[arch]()
    model.heads = torch.nn.Identity()  # forward -> CLS token after the final LayerNorm, as DINO
    return model
