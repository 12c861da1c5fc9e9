"""LAION aesthetic heads on L2-normalised CLIP image embeddings (N, D) -> (N,) scores.

`linear`: LAION-AI/aesthetic-predictor `sa_0_4_vit_l_14_linear.pth` (nn.Linear(768, 1)), used by
VBench aesthetic_quality. `mlp`: christophschuhmann/improved-aesthetic-predictor `MLP`
(simple_inference.py: 768-1024-128-64-16-1 linears with dropout between the first four),
`sac+logos+ava1-l14-linearMSE.pth`, the aesthetic score of KV-Edit's table.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from kvlock.metrics.base import MetricResult, frame_mean
from kvlock.metrics.clip_model import NamedClipMetric, clip_for
from kvlock.metrics.weights import (
    LoadedModel,
    WeightsUnavailable,
    fetch_hint,
    load_or_random,
    load_state_dict,
    model_file,
)


def linear_head(dim: int) -> nn.Module:
    return nn.Linear(dim, 1)


class MlpHead(nn.Module):
    """The improved predictor's MLP; parameter names match its checkpoint (`layers.N.*`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


HEADS = {"linear": linear_head, "mlp": MlpHead}


@functools.lru_cache(maxsize=4)
def load_head(
    kind: str, dim: int, file: str | None, *, seed: int, device: torch.device
) -> LoadedModel:
    """Head `kind` on `dim`-d embeddings from `file`, or seeded random when `file` is None
    (callers decide whether random weights are allowed)."""

    def build(checkpoint: Path | None) -> nn.Module:
        head = HEADS[kind](dim)
        if checkpoint is not None:
            head.load_state_dict(load_state_dict(checkpoint))
        return head

    return load_or_random(
        f"LAION aesthetic {kind} head",
        Path(file) if file else None,
        build,
        allow_random=True,
        seed=seed,
        device=device,
    )


@torch.no_grad()
def head_scores(head: LoadedModel, features: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, D) normalised embeddings -> (N,) float32 scores on CPU."""
    return head.module(features.to(device)).squeeze(-1).float().cpu()


class CLIPHeadMetric(NamedClipMetric):
    """A frame metric scored by an aesthetic head on CLIP image embeddings (VBench AQ, LAION AS).

    Subclasses set `head_kind`, `weights` (the kvlock.weights file) and `head_label`, and score
    with `self.clip_and_head()` then `self.mean_of(scores, clip, head)`.
    """

    head_kind: str
    weights: str
    head_label: str
    default_model = "ViT-L-14-quickgelu"

    def clip_and_head(self):
        """-> (the CLIP model, the head on its embedding width); missing weights are n/c."""
        s = self.settings
        clip = clip_for(s, self.model, self.pretrained)
        file = model_file(self.weights, s.weights_dir, not s.download_allowed)
        if file is None and not s.allow_random_weights:
            raise WeightsUnavailable(self.head_label, fetch_hint(self.weights))
        dim = int(clip.loaded.module.visual.output_dim)
        head = load_head(self.head_kind, dim, str(file) if file else None, seed=s.seed,
                         device=s.torch_device)
        return clip, head

    @staticmethod
    def mean_of(scores: torch.Tensor, clip, head) -> MetricResult:
        return frame_mean(scores, "undefined: no frames", model=f"{clip.description} + {head.description}",
                          random_weights=clip.loaded.random_weights or head.random_weights)
