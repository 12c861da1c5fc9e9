"""Source K/V cached during inversion, per (step, layer, branch); in memory or offloaded to CPU."""

from __future__ import annotations

import torch

# Storage precisions of the K/V store (`method.kv_dtype`); attention always runs in the model dtype.
KV_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float8_e4m3fn": torch.float8_e4m3fn,
}
FLOAT8_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448; e4m3fn has no inf, a cast past it is NaN


def kv_dtype(name: str) -> torch.dtype:
    if name not in KV_DTYPES:
        raise ValueError(f"method.kv_dtype={name!r} is not one of {', '.join(KV_DTYPES)}")
    return KV_DTYPES[name]


class KVStore:
    """Holds post-RoPE K and V of the cached tokens: each (n_tokens, heads, head_dim).

    mode "memory" keeps them on the compute device; "cpu" offloads them and brings each back
    when the edit reads it. `dtype` sets the storage precision (float8 values are clamped to its
    ±448 range, so bytes are exactly 1/4 of float32 with no scale tensors). With "cpu" on a CUDA
    device the offloaded tensors are pinned and reading one layer starts the copy of the next
    on a side stream, so transfers overlap the attention of the current layer.
    """

    def __init__(self, mode: str = "memory", dtype: str = "float32"):
        self.mode = mode
        self.dtype = kv_dtype(dtype)
        self.entries: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._prefetched: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor, object]] = {}
        self._stream = None

    def _cast(self, t: torch.Tensor, device) -> torch.Tensor:
        if self.dtype == torch.float8_e4m3fn and t.dtype != self.dtype:
            t = t.clamp(-FLOAT8_MAX, FLOAT8_MAX)
        t = t.to(device, self.dtype).contiguous()
        if self.mode == "cpu" and torch.cuda.is_available():
            t = t.pin_memory()
        return t

    def put(self, step: int, layer: int, branch: str, k: torch.Tensor, v: torch.Tensor) -> None:
        device = "cpu" if self.mode == "cpu" else k.device
        self.entries[(step, layer, branch)] = (self._cast(k, device), self._cast(v, device))

    def _fetch(self, key, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            k, v = self.entries[key]
        except KeyError:
            step, layer, branch = key
            raise KeyError(f"no cached K/V for step {step}, layer {layer}, branch {branch}") from None
        return k.to(device, non_blocking=True).to(dtype), v.to(device, non_blocking=True).to(dtype)

    def get(self, step: int, layer: int, branch: str, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """K, V of one (step, layer, branch) on `device` in the compute `dtype`."""
        key = (step, layer, branch)
        device = torch.device(device)
        if self.mode != "cpu" or device.type != "cuda":
            return self._fetch(key, device, dtype)
        if key in self._prefetched:
            k, v, ready = self._prefetched.pop(key)
            current = torch.cuda.current_stream(device)
            current.wait_event(ready)
            k.record_stream(current)  # made on the side stream, read on this one: keep until done
            v.record_stream(current)
        else:
            k, v = self._fetch(key, device, dtype)
        self._prefetch((step, layer + 1, branch), device, dtype)
        return k, v

    def _prefetch(self, key, device, dtype) -> None:
        """Start the host-to-device copy of `key` (the next layer) on a side stream."""
        if key not in self.entries or key in self._prefetched:
            return
        self._stream = self._stream or torch.cuda.Stream(device)
        with torch.cuda.stream(self._stream):
            k, v = self._fetch(key, device, dtype)
            ready = torch.cuda.Event()
            ready.record(self._stream)
        self._prefetched[key] = (k, v, ready)

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
