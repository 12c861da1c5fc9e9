"""Source-side feature cache: features of a source clip are computed once and reused.

Several methods (a sweep in one process, or runs sharing `cache_dir`) edit the same source
clips; source CLIP embeddings and source optical flow depend only on the source, the model and
the options, so they are keyed by `MetricInputs.source_key` plus those and kept in an in-memory
LRU, optionally mirrored to `.pt` files in a directory. A file holds the features and their
checksum; one that fails it (or cannot be read) is reported, recomputed and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from kvlock.tensor_checksum import tensors_checksum

log = logging.getLogger(__name__)
Features = dict[str, torch.Tensor]


class FeatureCache:
    """LRU of `{name: tensor}` dicts (CPU tensors); `hits`/`misses` count lookups."""

    def __init__(self, max_items: int = 32, disk_dir: str | Path | None = None):
        self.max_items = max_items
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, Features] = OrderedDict()

    def get_or_compute(self, key: str, compute: Callable[[], Features]) -> Features:
        """The cached features for `key`, else `compute()` (stored in memory and on disk)."""
        features = self._items.get(key)
        if features is None and self.disk_dir is not None and self._file(key).is_file():
            features = self._load(self._file(key))
        if features is None:
            self.misses += 1
            features = {name: t.detach().cpu() for name, t in compute().items()}
            if self.disk_dir is not None:
                self._save(key, features)
        else:
            self.hits += 1
        self._items[key] = features
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return features

    def _file(self, key: str) -> Path:
        return self.disk_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pt"

    def _load(self, path: Path) -> Features | None:
        """Features of a cache file, or None when it is unreadable or fails its checksum."""
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            features, checksum = stored["features"], stored["sha256"]
        except Exception as err:  # a damaged pickle raises many types; any means "recompute"
            log.warning("metric feature cache file %s unreadable (%s); recomputing", path.name, err)
            return None
        if tensors_checksum(features) != checksum:
            log.warning("metric feature cache file %s fails its checksum; recomputing", path.name)
            return None
        return features

    def _save(self, key: str, features: Features) -> None:
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._file(key).with_suffix(".tmp")
        torch.save({"features": features, "sha256": tensors_checksum(features)}, tmp)
        tmp.replace(self._file(key))


@functools.cache
def shared_cache(disk_dir: str | None = None, max_items: int = 32) -> FeatureCache:
    """The process-wide cache for these options (metrics built alike share one)."""
    return FeatureCache(max_items, disk_dir)
