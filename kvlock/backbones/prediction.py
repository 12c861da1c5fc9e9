"""What a transformer predicts, and its conversion to the velocity the engine integrates."""

from __future__ import annotations

import torch

PREDICTIONS = ("velocity", "sample")
T_MIN = 0.05  # sample -> velocity divides by max(t, T_MIN) (JiT's clamp), finite at t = 0


def sample_to_velocity(sample: torch.Tensor, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Velocity of a clean-sample (x) prediction: v = (x_t − x̂0) / max(t, T_MIN).

    sample, latents: (B, ...) the prediction x̂0 and x_t; t: (B,) in [0, 1]. Since
    x_t = (1 − t)·z0 + t·ε, this equals ε̂ − x̂0 for t ≥ T_MIN.
    """
    t = t.to(latents.dtype).clamp_min(T_MIN).view(-1, *[1] * (latents.dim() - 1))
    return (latents - sample) / t
