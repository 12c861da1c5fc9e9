"""The unit of work of the harness: one edit of one video."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# Canonical edit types: the names behaviour may depend on (a method asking for removal, the
# synthetic generator). A sample's `edit_type` is a free label (each benchmark names its own
# categories); canonical_edit_type() maps the known synonyms onto these names.
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
# Normalised label (see _normalise) -> canonical name. Covers the manifest's usual spellings,
# FiVE-Bench's six task names and PIE-Bench's ten folder names (kvlock.data.five_bench / pie_bench).
EDIT_TYPE_SYNONYMS = {
    **{name: name for name in EDIT_TYPES},
    "replace": "object_replace",
    "object_replacement": "object_replace",
    "object_replacement_rigid": "object_replace",
    "object_replacement_non_rigid": "object_replace",
    "change_object": "object_replace",
    "attribute": "attribute_change",
    "material_modification": "attribute_change",
    "change_attribute_content": "attribute_change",
    "change_attribute_material": "attribute_change",
    "color": "color_change",
    "colour_change": "color_change",
    "color_alteration": "color_change",
    "change_attribute_color": "color_change",
    "shape": "shape_change",
    "change_attribute_pose": "shape_change",
    "remove": "removal",
    "object_remove": "removal",
    "object_removal": "removal",
    "delete_object": "removal",
    "insert": "insertion",
    "add_object": "insertion",
    "object_addition": "insertion",
    "object_insert": "insertion",
    "background": "background_change",
    "change_background": "background_change",
    "change_style": "style",
    "stylization": "style",
    "reconstruction": "reconstruct",
}


def check_edit_type(value: object) -> str:
    """The label as given if it is a non-empty string; ValueError otherwise (the one error)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"edit_type must be a non-empty string, got {value!r}")
    return value


def canonical_edit_type(label: str) -> str | None:
    """The canonical name (one of EDIT_TYPES) a label stands for, or None if it names none.

    Case, separators, a leading category number and parentheses are ignored:
    'object_remove', 'Object Removal', '3_delete_object' -> 'removal'.
    """
    return EDIT_TYPE_SYNONYMS.get(_normalise(label))


def _normalise(label: str) -> str:
    text = re.sub(r"^\s*\d+\s*[._)\-\s]\s*", "", label.lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


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
    edit_type: str  # a free label, kept as the dataset names it; see canonical_edit_type
    target_frames: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])
