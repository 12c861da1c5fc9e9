"""Per-edit files beside the results: traces/<edit_id>.json, videos/<edit_id>.mp4 and
videos/<edit_id>_compare.mp4 (source | mask | edit, side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvlock.data.video_io import write_mp4
from kvlock.experiment.atomic import write_json
from kvlock.experiment.store import safe_name


def trace_path(run_dir: Path, edit_id: str) -> Path:
    """traces/<edit_id>.json of a run dir."""
    return Path(run_dir) / "traces" / f"{safe_name(edit_id)}.json"


def save_trace(run_dir: Path, edit_id: str, trace: list[dict]) -> Path:
    """One dict per denoising step (step, t, sigma2, alpha quantiles, omega, s_star, nfe)."""
    return write_json(trace_path(run_dir, edit_id), trace)


def comparison_frames(source: np.ndarray, mask: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """(T, H, 3W, 3) uint8: source | mask (white = edit region) | edit."""
    mask_rgb = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=-1)
    return np.concatenate([source, mask_rgb, edited], axis=2)


def save_videos(run_dir: Path, edit_id: str, source: np.ndarray, mask: np.ndarray, edited: np.ndarray,
                fps: float, edit: bool = True, compare: bool = True) -> dict[str, Path]:
    """Write the requested mp4 files; returns {"edit": path, "compare": path} for those written."""
    stem = run_dir / "videos" / safe_name(edit_id)
    out = {}
    if edit:
        out["edit"] = write_mp4(stem.with_name(f"{stem.name}.mp4"), edited, fps)
    if compare:
        out["compare"] = write_mp4(stem.with_name(f"{stem.name}_compare.mp4"),
                                   comparison_frames(source, mask, edited), fps)
    return out
