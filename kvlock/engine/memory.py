"""Memory estimate of one edit (weights, KV store, trajectory, activations) and a guard that fails
before a run that cannot fit, naming configurations that would."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvlock.engine.config import EditConfig
from kvlock.engine.kv_store import kv_dtype

GIB = 1024**3


class ResourceError(RuntimeError):
    """The requested edit cannot fit in the available memory."""


@dataclass
class MemoryEstimate:
    """Bytes per component of one edit at a given clip size."""

    weights: int
    kv_store: int
    trajectory: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_store + self.trajectory + self.activations

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in vars(self).items())
        return f"~{self.total / GIB:.2f} GiB ({parts} GiB)"


def available_bytes(device: torch.device) -> int:
    """Free memory of the device: CUDA free memory, or MemAvailable of /proc/meminfo on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemAvailable from /proc/meminfo")


def weight_bytes(backbone) -> int:
    """Resident parameters and buffers: transformer, prompt encoder and codec (each held for the run)."""
    modules = [backbone.transformer, backbone.prompt_encoder, backbone.codec]
    return sum(t.nbytes for m in modules if isinstance(m, torch.nn.Module)
               for t in (*m.parameters(), *m.buffers()))


def estimate_edit(backbone, config: EditConfig, num_frames: int, height: int, width: int,
                  fg_fraction: float = 0.25, weights: int | None = None) -> MemoryEstimate:
    """Formula estimate. KV store = steps × layers × 2 × cached tokens × dim × bytes × branches."""
    geo = backbone.geometry
    tokens = geo.num_tokens(num_frames, height, width)
    dim, layers = backbone.inner_dim, backbone.num_layers
    ffn = backbone.ffn_dim
    act_bytes = torch.finfo(backbone.dtype).bits // 8
    branches = 2 if config.guidance.rule != "none" and config.kv_branch == "per_branch" else 1
    cached = tokens if config.injection == "full" else int(tokens * (1 - fg_fraction))
    kv_bytes = kv_dtype(config.kv_dtype).itemsize
    stores_kv = config.source == "inversion" and config.needs_source_kv and config.kv_store == "memory"
    kv = config.steps * layers * 2 * cached * dim * kv_bytes * branches if stores_kv else 0
    c, f, h, w = geo.latent_shape(num_frames, height, width)
    latent = c * f * h * w * 4
    trajectory = (config.steps + 1) * latent if config.needs_inversion else 0
    rows = (2 if config.guidance.rule != "none" else 1) * (2 if config.source == "noised" else 1)
    activations = rows * tokens * (6 * dim + 2 * ffn) * act_bytes + 16 * latent
    weights = weight_bytes(backbone) if weights is None else weights
    return MemoryEstimate(weights, kv, trajectory, activations)


def check_fits(backbone, config: EditConfig, num_frames: int, height: int, width: int,
               fg_fraction: float = 0.25, headroom: float = 0.9, free: int | None = None) -> MemoryEstimate:
    """Raise ResourceError (with configurations that would fit) when the edit cannot fit."""
    weights = weight_bytes(backbone)
    est = estimate_edit(backbone, config, num_frames, height, width, fg_fraction, weights)
    free = available_bytes(backbone.device) if free is None else free
    if est.total <= headroom * free:
        return est
    hints = []
    if est.kv_store:
        hints.append("method.kv_store=cpu (offload the inversion K/V)")
        hints.append("method=kvlock (noised source: O(1) K/V memory)")
    step = backbone.geometry.temporal_factor
    for frames in range(num_frames - step, 0, -step):
        if estimate_edit(backbone, config, frames, height, width, fg_fraction, weights).total <= headroom * free:
            hints.append(f"dataset.prepare.max_frames={frames}")
            break
    raise ResourceError(
        f"edit at {num_frames}x{height}x{width} with method {config.name} needs {est.describe()} but "
        f"{free / GIB:.2f} GiB is free on {backbone.device}; would fit: {'; '.join(hints) or 'a smaller model'}"
    )
