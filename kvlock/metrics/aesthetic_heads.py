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

from kvlock.metrics.weights import LoadedModel, load_or_random, load_state_dict


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
