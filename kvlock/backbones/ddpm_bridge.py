"""A DDPM v-prediction model (CogVideoX) inside the flow-matching loop.

Flow matching: x_t = (1 − t)·z0 + t·ε. DDPM: x_τ = a·z0 + σ·ε with a = √ᾱ_τ, σ = √(1 − ᾱ_τ).
The two describe the same noisy latent up to a scale when σ/a = t/(1 − t), i.e.
ᾱ = (1 − t)² / ((1 − t)² + t²); then x_τ = x_t / n with n = √((1 − t)² + t²) (finite for every t,
zero-SNR end included). τ is read off the scheduler's ᾱ table (linear interpolation, fractional
τ passed to the timestep embedding). From the model's v̂ = a·ε − σ·z0 (diffusers'
`CogVideoXDDIMScheduler.step`, v_prediction branch): ẑ0 = a·x_τ − σ·v̂, ε̂ = σ·x_τ + a·v̂, so the
flow velocity is ε̂ − ẑ0 = (σ − a)·x_τ + (a + σ)·v̂.
"""

from __future__ import annotations

import numpy as np
import torch


class DDPMBridge:
    """alphas_cumprod: (T,) the scheduler's ᾱ, decreasing in τ."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """t (B,) in [0, 1] -> (τ, n, a, σ), each (B,) float32."""
        t64 = t.detach().double().cpu()
        n = torch.sqrt((1 - t64) ** 2 + t64**2)
        a, sigma = (1 - t64) / n, t64 / n
        acp = self.alphas_cumprod
        # np.interp needs increasing x: ᾱ reversed, τ reversed with it
        tau = np.interp((a**2).numpy(), acp[::-1], np.arange(len(acp), dtype=np.float64)[::-1])
        as32 = {"dtype": torch.float32, "device": t.device}
        return (torch.as_tensor(tau, **as32), n.to(**as32), a.to(**as32), sigma.to(**as32))

    def velocity(self, v_hat: torch.Tensor, x_tau: torch.Tensor, a: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """v_hat, x_tau (B, ...) -> flow velocity (B, ...)."""
        shape = (-1,) + (1,) * (x_tau.dim() - 1)
        a, sigma = a.view(shape), sigma.view(shape)
        return (sigma - a) * x_tau + (a + sigma) * v_hat
