"""KV-Lock's hallucination signal: the sliding-window variance of the predicted clean latent.

σ²_k = sample variance of x̂0 over the last W steps, averaged over the foreground elements
("fg", default), over every generated element ("global" ablation) or per token ("token":
token-level locking). The schedules it drives (α, ω) live in `kvlock.engine.policy`; this module
imports nothing from the engine, so the dependency runs one way (policy → hallucination).
"""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F


class HallucinationDetector:
    """Sliding-window sample variance of x̂0 (B, C, F, h, w), kept as running sums (O(1) per step).

    Only the elements the signal reads are kept: the foreground elements for "fg", the generated
    elements for "global" (all of them, or `generated` where the editor pastes the rest from the
    source every step, so fg-only and full-token runs read the same numbers), all for "token".
    Memory: the window's W predictions in their own dtype (float32 from the engine; the running
    sums need each one back when it leaves the window, so an exact sliding variance cannot hold
    less) plus the two float64 sums: `nbytes` = W·E·4 + 2·E·8 for E watched elements. W grows
    with the schedule (a fraction of the steps), so this is the one part of a noised-source edit
    whose memory grows with the step count.
    """

    def __init__(self, window: int, signal: str, fg_latent: torch.Tensor, patch_size,
                 generated: torch.Tensor | None = None):
        """fg_latent, generated: (1, 1, F, h, w) bool on the latent grid; generated None = all."""
        self.window = window
        self.history: deque[torch.Tensor] = deque()
        self.signal = signal
        self.fg = fg_latent
        self.generated = generated
        self.patch_size = tuple(patch_size)
        self.sum = self.sum_sq = None
        self.shape = None

    def select(self, x0_hat: torch.Tensor) -> torch.Tensor:
        """The elements this signal watches, in x̂0's own dtype (the window keeps them as they are;
        widening to float64 for the sums is exact, so keeping the narrow copy loses nothing)."""
        x = x0_hat.detach()
        if self.signal == "fg" and self.fg.any():
            return x[self.fg.expand_as(x)]
        if self.signal == "global" and self.generated is not None:
            return x[self.generated.expand_as(x)]
        return x.clone()

    def update(self, x0_hat: torch.Tensor) -> None:
        kept = self.select(x0_hat)
        self.shape = x0_hat.shape
        x = kept.double()  # running sums in float64: they must not drift
        if self.sum is None:
            self.sum, self.sum_sq = torch.zeros_like(x), torch.zeros_like(x)
        self.history.append(kept)
        self.sum += x
        self.sum_sq += x * x
        if len(self.history) > self.window:
            old = self.history.popleft().double()
            self.sum -= old
            self.sum_sq -= old * old

    @property
    def nbytes(self) -> int:
        """Bytes the detector holds: the window's predictions and the two running sums."""
        sums = 0 if self.sum is None else self.sum.nbytes + self.sum_sq.nbytes
        return sum(x.nbytes for x in self.history) + sums

    @property
    def ready(self) -> bool:
        return len(self.history) >= 2

    def variance(self) -> torch.Tensor:
        """Unbiased variance over the window of each watched element."""
        n = len(self.history)
        return ((self.sum_sq - self.sum * self.sum / n) / (n - 1)).clamp_min(0.0)

    def sigma2(self) -> tuple[float, torch.Tensor | None]:
        """-> (scalar σ² that drives ω, per-token σ² (N,) for token-level locking or None)."""
        var = self.variance()
        if self.signal != "token":
            return float(var.mean()), None
        var = var.view(self.shape).float()
        fg = self.fg.expand_as(var)
        scalar = float(var[fg].mean()) if fg.any() else float(var.mean())
        per_token = F.avg_pool3d(var.mean(1, keepdim=True), self.patch_size, self.patch_size)
        return scalar, per_token.flatten()
