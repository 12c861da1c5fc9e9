"""Datasets: EditSample producers (synthetic, JSON Lines manifest, DAVIS, FiVE-Bench, PIE-Bench,
VACE-Benchmark) and preparation."""

from kvlock.data.errors import DataError, FailedItem
from kvlock.data.prepare import PrepareConfig, prepare_sample
from kvlock.data.registry import DATASETS, iter_dataset
from kvlock.data.sample import EDIT_TYPES, EditSample, canonical_edit_type
from kvlock.data.synthetic import make_synthetic_edits
from kvlock.data.video_io import read_frames, read_masks, video_hash, write_mp4

__all__ = [
    "DATASETS",
    "EDIT_TYPES",
    "DataError",
    "EditSample",
    "FailedItem",
    "PrepareConfig",
    "canonical_edit_type",
    "iter_dataset",
    "make_synthetic_edits",
    "prepare_sample",
    "read_frames",
    "read_masks",
    "video_hash",
    "write_mp4",
]
