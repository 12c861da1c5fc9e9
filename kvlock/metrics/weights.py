"""Metric-model weights: local caches, seeded random weights on request, and (for the catalog
files of `kvlock.weights`) a download on first use unless `metrics.offline` / HF_HUB_OFFLINE.

Caches looked in (or `weights_dir` when set, which replaces all of them):
torch hub dir (`torch.hub.get_dir()`: `checkpoints/` for torchvision/DINO files, repo folders
for hub code), the Hugging Face cache and open_clip's URL cache (`~/.cache/clip`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from kvlock.weights import ensure, entry

T = TypeVar("T")


class WeightsUnavailable(RuntimeError):
    """A metric model's weights are not in the local caches; `str(err)` is the result-row marker."""

    def __init__(self, model: str, fetch_command: str | None = None):
        hint = f" (run `{fetch_command}`)" if fetch_command else ""
        super().__init__(f"not computed: {model} weights unavailable{hint}")


@dataclass(frozen=True)
class LoadedModel:
    """A metric model in eval mode; `description` says what ran (incl. "random init, seed s")."""

    module: torch.nn.Module
    description: str
    random_weights: bool

    @property
    def provenance(self) -> dict:
        """The `MetricResult` fields recording this model: {"model", "random_weights"}."""
        return {"model": self.description, "random_weights": self.random_weights}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Run `build` under a fixed torch seed without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def load_or_random(
    model: str,
    checkpoint: Path | None,
    build: Callable[[Path | None], torch.nn.Module],
    *,
    allow_random: bool,
    seed: int,
    device: torch.device,
    fetch_command: str | None = None,
) -> LoadedModel:
    """`build(checkpoint)` (it loads the file), or `build(None)` under a fixed seed for random
    weights when allowed. Raises WeightsUnavailable (naming `fetch_command`) when there is no
    checkpoint and random weights are not allowed."""
    if checkpoint is None and not allow_random:
        raise WeightsUnavailable(model, fetch_command)
    module = seeded(seed, lambda: build(checkpoint))
    if checkpoint is None:
        description, random_weights = f"{model} (random init, seed {seed})", True
    else:
        description, random_weights = model, False
    return LoadedModel(module.eval().requires_grad_(False).to(device), description, random_weights)


def model_file(name: str, weights_dir: str | None, offline: bool) -> Path | None:
    """Catalog file `name` (kvlock.weights): on disk, or downloaded now unless offline."""
    return ensure(entry(name), weights_dir, offline)


def fetch_hint(name: str) -> str:
    return entry(name).fetch_command

