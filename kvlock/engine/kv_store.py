"""Source K/V cached during inversion, per (step, layer, branch); in memory or offloaded to CPU."""

from __future__ import annotations

import torch

from kvlock.backbones.runtime import DTYPES


class KVStore:
    """Holds post-RoPE K and V of the cached tokens: each (n_tokens, heads, head_dim).

    mode "memory" keeps them on the compute device; "cpu" offloads them and brings each back
    when the edit reads it. `dtype` sets the storage precision.
    """

    def __init__(self, mode: str = "memory", dtype: str = "float32"):
        self.mode = mode
        self.dtype = DTYPES[dtype]
        self.entries: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def put(self, step: int, layer: int, branch: str, k: torch.Tensor, v: torch.Tensor) -> None:
        if self.mode == "cpu":
            k, v = k.to("cpu", self.dtype), v.to("cpu", self.dtype)
        else:
            k, v = k.to(dtype=self.dtype), v.to(dtype=self.dtype)
        self.entries[(step, layer, branch)] = (k.contiguous(), v.contiguous())

    def get(self, step: int, layer: int, branch: str, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            k, v = self.entries[(step, layer, branch)]
        except KeyError:
            raise KeyError(f"no cached K/V for step {step}, layer {layer}, branch {branch}") from None
        return k.to(device, dtype, non_blocking=True), v.to(device, dtype, non_blocking=True)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.entries.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors for saving (source cache)."""
        out = {}
        for (step, layer, branch), (k, v) in self.entries.items():
            out[f"kv.{step}.{layer}.{branch}.k"] = k
            out[f"kv.{step}.{layer}.{branch}.v"] = v
        return out

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        keys = {name.rsplit(".", 1)[0] for name in tensors if name.startswith("kv.")}
        for key in keys:
            _, step, layer, branch = key.split(".")
            self.put(int(step), int(layer), branch, tensors[key + ".k"], tensors[key + ".v"])
