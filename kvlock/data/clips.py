"""Load a (video, mask) pair from disk once per iteration, binarized and checked."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from kvlock.data.errors import DataError
from kvlock.data.masks import binarize_mask, check_clip
from kvlock.data.video_io import is_palette_mask, read_frames, read_masks


class ClipReader:
    """Reads clips and raw masks through small LRU caches keyed by path (failures cached too),
    so edits that share a video read it once."""

    def __init__(self, cache_size: int = 4):
        self._frames = lru_cache(maxsize=cache_size)(_capture(read_frames))
        self._masks = lru_cache(maxsize=cache_size)(
            _capture(lambda p: (read_masks(p), is_palette_mask(p)))
        )

    def load(
        self, video: Path, mask: Path, *, threshold: int, objects: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """frames (T, H, W, 3) uint8, mask (T, H, W) bool, mask report (for meta["mask"])."""
        frames = _unwrap(self._frames(video))
        raw, palette = _unwrap(self._masks(mask))
        binary, report = binarize_mask(
            raw, mask, threshold=threshold, objects=objects, palette=palette
        )
        check_clip(frames, binary, mask)
        return frames, binary, report


def _capture(read):
    def call(path):
        try:
            return read(path)
        except DataError as err:
            return err

    return call


def _unwrap(value):
    if isinstance(value, DataError):
        raise DataError(value.path, value.problem)
    return value
