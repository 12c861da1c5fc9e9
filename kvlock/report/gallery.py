"""Edited clips side by side: the notebooks' gallery (a row per frame, a column per clip) and the
demo's edit grid (a row per method, a column per frame, the source first with its mask outlined)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kvlock.experiment.store import safe_name
from kvlock.report.collect import Collection
from kvlock.report.selection import ok_rows
from kvlock.report.tables import MAIN_METHODS


def video_paths(row: pd.Series) -> dict[str, Path]:
    """{"edit": videos/<edit>.mp4, "compare": videos/<edit>_compare.mp4} of one result row."""
    stem = Path(row["run_dir"]) / "videos" / safe_name(row["edit_id"])
    return {"edit": stem.with_name(f"{stem.name}.mp4"), "compare": stem.with_name(f"{stem.name}_compare.mp4")}


def gallery_clips(collection: Collection, edit_id: str, labels: Iterable[str] | None = None
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """({"source": clip, "mask": clip, <label>: edited clip, ...}, notes) for one edit, clips as
    (T, H, W, 3) uint8 read with kvlock.data.video_io.read_frames. Source and mask come from a
    `_compare.mp4` (source | mask | edit); an edit whose own mp4 is missing falls back to the
    third panel of its comparison video. `notes` says what could not be shown."""
    from kvlock.data.video_io import read_frames

    rows = ok_rows(collection)
    rows = rows[rows["edit_id"] == edit_id]
    notes: list[str] = []
    if rows.empty:
        return {}, [f"{edit_id}: no ok result rows"]
    wanted = list(dict.fromkeys(rows["label"])) if labels is None else list(labels)
    clips: dict[str, np.ndarray] = {}
    for label in wanted:
        match = rows[rows["label"] == label]
        if match.empty:
            notes.append(f"{edit_id}: no ok row for {label}")
            continue
        paths = video_paths(match.iloc[0])
        if paths["compare"].is_file() and "source" not in clips:
            compare = read_frames(paths["compare"])
            width = compare.shape[2] // 3
            clips["source"], clips["mask"] = compare[:, :, :width], compare[:, :, width:2 * width]
        if paths["edit"].is_file():
            clips[label] = read_frames(paths["edit"])
        elif paths["compare"].is_file():
            compare = read_frames(paths["compare"])
            clips[label] = compare[:, :, 2 * (compare.shape[2] // 3):]
        else:
            notes.append(f"{edit_id}: {label} saved no video (run.save_videos=false?)")
    if "source" not in clips:
        notes.append(f"{edit_id}: no _compare.mp4, so no source / mask panels (run.save_comparison=false?)")
    order = ["source", "mask", *[k for k in clips if k not in ("source", "mask")]]
    return {k: clips[k] for k in order if k in clips}, notes


def gallery_figure(clips: dict[str, np.ndarray], frames: Iterable[int], title: str = ""):
    """Grid: one row per frame index, one column per clip (source | mask | methods)."""
    import matplotlib.pyplot as plt

    frames = list(frames)
    names = list(clips)
    fig, axes = plt.subplots(len(frames), len(names), figsize=(1.9 * len(names), 1.9 * len(frames) + 0.4),
                             dpi=110, squeeze=False)
    for r, index in enumerate(frames):
        for c, name in enumerate(names):
            ax = axes[r][c]
            clip = clips[name]
            if -len(clip) <= index < len(clip):
                ax.imshow(clip[index])
            else:
                ax.text(0.5, 0.5, "no frame", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("\n".join(textwrap.wrap(name, 24)), fontsize=8)
            if c == 0:
                ax.set_ylabel(f"frame {index}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def common_edit(collection: Collection) -> str:
    """The first edit id (sorted) that every config finished ok. Raises ValueError when none did."""
    rows = ok_rows(collection)
    shared = sorted(set.intersection(*(set(g["edit_id"]) for _, g in rows.groupby("label")))) \
        if len(rows) else []
    if not shared:
        raise ValueError("edit grid: no edit that every config finished")
    return shared[0]


def row_caption(row: pd.Series) -> str:
    """Method display name, the oracle's colour verdict and the background PSNR, where computed."""
    parts = [MAIN_METHODS.get(row["method"], row["method"]) + row["label"][len(row["method"]):]]
    color = float(row.get("oracle_color_acc", math.nan))
    if math.isfinite(color):
        parts.append("colour ✓" if color == 1 else "colour ✗")
    psnr = float(row.get("bg_psnr", math.nan))
    if math.isfinite(psnr):
        parts.append(f"BG {psnr:.1f} dB")
    return "\n".join(parts)


def edit_grid_figure(collection: Collection, edit_id: str | None = None):
    """One edit (None: `common_edit`) across configs: the source with its mask outlined, then a row
    per config in the main table's method order; a column per frame. Raises ValueError when the
    source or an edited clip has no video to show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edit_id = edit_id or common_edit(collection)
    rows = ok_rows(collection)
    rows = rows[rows["edit_id"] == edit_id]
    order = {m: i for i, m in enumerate(MAIN_METHODS)}
    rows = rows.assign(_order=rows["method"].map(order).fillna(len(order)))
    rows = rows.sort_values(["_order", "label"])
    clips, notes = gallery_clips(collection, edit_id, list(rows["label"]))
    if notes:
        raise ValueError("edit grid: " + "; ".join(notes))
    source, mask = clips["source"], clips["mask"].mean(-1) > 127
    panels = [("source\n(mask outlined)", source)]
    panels += [(row_caption(row), clips[row["label"]]) for _, row in rows.iterrows()]
    frames = len(source)
    size = (1.2 * frames + 1.8, 1.2 * len(panels) + 0.5)
    fig, axes = plt.subplots(len(panels), frames, figsize=size, dpi=110, squeeze=False)
    for r, (caption, clip) in enumerate(panels):
        for c in range(frames):
            ax = axes[r][c]
            ax.imshow(clip[c], interpolation="nearest")
            if r == 0 and mask[c].any():
                ax.contour(mask[c], levels=[0.5], colors="cyan", linewidths=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {c}", fontsize=8)
        axes[r][0].set_ylabel(caption, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(edit_id, fontsize=9)
    fig.tight_layout()
    return fig


def edit_grid(collection: Collection, path: str | Path, edit_id: str | None = None) -> Path:
    """Write `edit_grid_figure` as a PNG at `path`."""
    import matplotlib.pyplot as plt

    fig = edit_grid_figure(collection, edit_id)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
