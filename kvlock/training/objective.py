"""The training objective: differentiable prompt encoding, training times and the weighted
rectified-flow loss in velocity or sample space."""

from __future__ import annotations

import torch

from kvlock.backbones.prediction import sample_to_velocity


def encode_prompts(prompt_encoder, prompts: list[str]) -> torch.Tensor:
    """Differentiable twin of `PromptEncoder.forward`: -> (B, L, D), zeroed past each prompt."""
    ids, mask = prompt_encoder.tokenizer([p.strip() for p in prompts], prompt_encoder.max_length)
    device = prompt_encoder.encoder.device
    hidden = prompt_encoder.encoder(ids.to(device), mask.to(device)).last_hidden_state
    return hidden * mask.to(device)[..., None].to(hidden.dtype)


def sample_t(n: int, kind: str, gen: torch.Generator, mean: float = 0.0, std: float = 1.0,
             uniform_share: float = 0.0) -> torch.Tensor:
    """(n,) training times in (0, 1): logit-normal(mean, std) (mean > 0 favours noisy t) or uniform;
    with `uniform_share` > 0 each time is replaced by a uniform one with that probability (keeps the
    low-noise end, where edges and small shapes are drawn, in training)."""
    if kind == "logit_normal":
        t = torch.sigmoid(mean + std * torch.randn(n, generator=gen))
    elif kind == "uniform":
        t = torch.rand(n, generator=gen)
    else:
        raise ValueError(f"Unknown t_sampling '{kind}'. Available: logit_normal, uniform")
    if uniform_share > 0:
        uniform, pick = torch.rand(n, generator=gen), torch.rand(n, generator=gen) < uniform_share
        t = torch.where(pick, uniform, t)
    return t


def flow_loss(out: torch.Tensor, z0: torch.Tensor, eps: torch.Tensor, x_t: torch.Tensor,
              t: torch.Tensor, prediction: str, space: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted MSE of the transformer output `out` in velocity or sample space; all
    (B, C, F, h, w) (`weights` too; None: plain mean), t (B,).

    The velocity loss weighs an x̂0 error by 1/t² (the low-noise end dominates); the sample loss
    weighs every t alike, which puts the gradient where layout and colour are decided.
    For prediction "sample" the velocity loss is JiT's: both sides through `sample_to_velocity`.
    """
    if prediction == "sample":
        x_hat, v_hat, v = out, sample_to_velocity(out, x_t, t), sample_to_velocity(z0, x_t, t)
    else:
        x_hat, v_hat, v = x_t - t.view(-1, 1, 1, 1, 1) * out, out, eps - z0
    if space == "sample":
        error = (x_hat - z0) ** 2
    elif space == "velocity":
        error = (v_hat - v) ** 2
    else:
        raise ValueError(f"Unknown train.loss '{space}'. Available: velocity, sample")
    return error.mean() if weights is None else (weights * error).sum() / weights.sum()
