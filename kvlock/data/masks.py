"""Turn raw mask values into the boolean edit region and check it against its clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kvlock.data.errors import DataError


def binarize_mask(
    raw: np.ndarray,
    path: str | Path,
    *,
    threshold: int = 127,
    objects: Sequence[int] | None = None,
    palette: bool = False,
) -> tuple[np.ndarray, dict]:
    """(T, H, W) uint8 raw values -> (T, H, W) bool edit region, plus a report for meta["mask"].

    Rules: `objects` given -> pixels whose value is one of those ids; palette masks -> value > 0
    (union of all objects); gray masks whose maximum is 1 (0/1 masks) -> value > 0; other gray
    masks -> value > threshold. Non-binary gray masks are not an error; the report says so.
    """
    values = np.unique(raw).tolist()
    if objects is not None:
        ids = sorted({int(i) for i in objects})
        mask, rule = np.isin(raw, ids), f"value in {ids}"
        if not mask.any():
            raise DataError(
                path, f"object ids {ids} not in the mask (values present: {values[:16]})"
            )
    elif palette or max(values) <= 1:
        mask, rule = raw > 0, "value > 0"
    else:
        mask, rule = raw > threshold, f"value > {threshold}"
    report = {
        "path": str(path),
        "kind": "palette" if palette else "gray",
        "rule": rule,
        "non_binary": not palette and not set(values) <= {0, 1, 255},
        "num_values": len(values),
    }
    if palette:
        report["object_ids"] = [v for v in values if v > 0]
    return mask, report


def check_clip(frames: np.ndarray, mask: np.ndarray, mask_path: str | Path) -> None:
    """Frames (T, H, W, 3) and mask (T, H, W) must agree in count and size; mask must be usable."""
    if len(mask) != len(frames):
        raise DataError(mask_path, f"mask has {len(mask)} frames but the video has {len(frames)}")
    if mask.shape[1:] != frames.shape[1:3]:
        raise DataError(
            mask_path,
            f"mask size {mask.shape[1]}x{mask.shape[2]} differs from frame size "
            f"{frames.shape[1]}x{frames.shape[2]}",
        )
    check_coverage(mask, mask_path)


def check_coverage(
    mask: np.ndarray, path: str | Path, min_fraction: float = 0.0, max_fraction: float = 1.0
) -> float:
    """Fraction of the (T, H, W) mask in the edit region; rejects empty and full-frame masks."""
    if not mask.any():
        raise DataError(path, "empty mask (no edit region)")
    if mask.all():
        raise DataError(path, "full-frame mask (nothing to preserve)")
    fraction = float(mask.mean())
    if fraction < min_fraction:
        raise DataError(
            path, f"mask covers {fraction:.4f} of the clip, below min_mask_fraction {min_fraction}"
        )
    if fraction > max_fraction:
        raise DataError(
            path, f"mask covers {fraction:.4f} of the clip, above max_mask_fraction {max_fraction}"
        )
    return fraction
