"""Disk cache of source-side tensors (inversion trajectory and K/V), keyed by the engine.

Keys are content-addressed (the engine hashes the source latents, mask, prompt and every
setting the inversion depends on), so one cache dir is safely shared by the jobs of a sweep and
by later sweeps: a second method over the same edits reuses the inversion. Each entry carries a
checksum of its tensors in the file's metadata; an entry that fails it (truncated, or corrupted
in place) is reported and treated as a miss, so the engine recomputes and replaces it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from kvlock.experiment.atomic import atomic_write
from kvlock.tensor_checksum import tensors_checksum

log = logging.getLogger(__name__)
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
CHECKSUM = "sha256"


class DiskSourceCache:
    """`load(key) -> dict[str, Tensor] | None` and `save(key, tensors)`; one safetensors file per key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        if not KEY.match(key):
            raise ValueError(f"bad source cache key {key!r} (letters, digits, '.', '_', '-')")
        return self.root / f"{key}.safetensors"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        """The entry's tensors, or None (a miss) when absent, unreadable or failing its checksum."""
        path = self.path(key)
        if path.is_file():
            try:
                with safe_open(str(path), "pt") as f:
                    expected = (f.metadata() or {}).get(CHECKSUM)
                tensors = load_file(path)
            except (SafetensorError, OSError) as err:
                log.warning("source cache entry %s unreadable (%s); recomputing", path.name, err)
            else:
                if expected is not None and tensors_checksum(tensors) == expected:
                    self.hits += 1
                    return tensors
                problem = "has no checksum" if expected is None else "fails its checksum (corrupted)"
                log.warning("source cache entry %s %s; recomputing and replacing it", path.name, problem)
        self.misses += 1
        return None

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        plain = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
        metadata = {CHECKSUM: tensors_checksum(plain)}
        atomic_write(self.path(key), lambda tmp: save_file(plain, str(tmp), metadata=metadata))

    def __repr__(self) -> str:
        return f"DiskSourceCache({self.root}, hits={self.hits}, misses={self.misses})"
