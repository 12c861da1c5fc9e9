"""Content checksum of a dict of tensors, stored beside on-disk caches and verified on load."""

from __future__ import annotations

import hashlib

import torch


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and raw bytes, in name order.

    Any dtype hashes (bfloat16 and float8 included): the bytes are read through a uint8 view.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
