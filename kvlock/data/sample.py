"""The unit of work of the harness: one edit of one video."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EDIT_TYPES = (
    "object_replace",
    "attribute_change",
    "color_change",
    "shape_change",
    "removal",
    "insertion",
    "background_change",
    "style",
    "reconstruct",
)


@dataclass
class EditSample:
    """One edit: a source clip, its edit-region mask and the prompts.

    frames: (T, H, W, 3) uint8 source video.
    mask: (T, H, W) bool, True = edit region (foreground).
    target_frames: (T, H, W, 3) uint8 ground-truth edited clip (synthetic edits only).
    meta: provenance and preparation record (source paths, resize, stride, threshold, ...).
    """

    edit_id: str
    video_id: str
    frames: np.ndarray
    mask: np.ndarray
    source_prompt: str
    target_prompt: str
    edit_type: str
    target_frames: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])
