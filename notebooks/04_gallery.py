# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Gallery
#
# Side-by-side frames of chosen edits: source | mask | each method's edit, one row per frame
# index. Frames are read from the run dirs' `videos/<edit_id>.mp4` (the edit) and
# `videos/<edit_id>_compare.mp4` (source | mask | edit, for the source and mask panels) with
# `kvlock.data.video_io.read_frames`; the mp4s are lossy (crf 17), so the mask panel is nearly
# but not exactly binary.
#
# Set `RESULTS_DIR` below, or the environment variable `KVLOCK_RESULTS_DIR` (it wins).

# %% tags=["parameters"]
RESULTS_DIR = "../multirun/demo"  # a run dir or a sweep dir (searched recursively)
EDIT_IDS = None  # list of edit ids (None: the first MAX_EDITS edits)
MAX_EDITS = 3
FRAME_INDICES = None  # list of frame indices, negative = from the end (None: first, middle, last)
METHODS = None  # list of config labels / method names, in column order (None: all)
SEED = None  # the seed whose videos to show (None: the smallest)
FIG_DIR = None  # save figures as PNG here too (None: only display them)

# %%
from pathlib import Path

import pandas as pd

from kvlock.report import gallery, notebook, selection
from kvlock.report.collect import collect

RESULTS_DIR = Path(notebook.env_override("KVLOCK_RESULTS_DIR", RESULTS_DIR)).expanduser()
FIG_DIR = notebook.env_override("KVLOCK_FIG_DIR", FIG_DIR)
pd.set_option("display.width", 160)
print(f"results dir: {RESULTS_DIR.resolve()}")

# %%
collection = selection.pool_seeds(collect(RESULTS_DIR))
rows = selection.ok_rows(collection)
seed = SEED if SEED is not None else (rows.seed.min() if len(rows) else None)
rows = rows[rows.seed == seed]
collection = selection.subset(collection, collection.rows.index.isin(rows.index))
available = list(dict.fromkeys(rows.edit_id))
print(f"seed {seed}: {len(available)} edits with ok rows; configs: {', '.join(dict.fromkeys(rows.label))}")
if EDIT_IDS is None:
    edit_ids = available[:MAX_EDITS]
else:
    edit_ids = [e for e in EDIT_IDS if e in available]
    for edit in sorted(set(EDIT_IDS) - set(edit_ids)):
        print(f"edit {edit!r} has no ok rows at seed {seed}: skipped")
if METHODS is None:
    labels = None
else:
    by_method = rows.drop_duplicates("label").set_index("label")["method"]
    labels = list(dict.fromkeys(label for wanted in METHODS for label, method in by_method.items()
                                if wanted in (label, method)))
    if not labels:
        print(f"none of {METHODS} in these runs; showing every config")
        labels = None
print("edits:", edit_ids or "none")

# %%
shown = 0
for edit_id in edit_ids:
    clips, notes = gallery.gallery_clips(collection, edit_id, labels)
    for note in notes:
        print(note)
    if not set(clips) - {"source", "mask"}:
        print(f"{edit_id}: no edited video to show")
        continue
    length = min(len(c) for c in clips.values())
    frames = FRAME_INDICES if FRAME_INDICES is not None else sorted({0, length // 2, length - 1})
    bad = [i for i in frames if not -length <= i < length]
    if bad:
        print(f"{edit_id}: frame indices {bad} outside 0..{length - 1}: shown as 'no frame'")
    edit_type = rows.loc[rows.edit_id == edit_id, "edit_type"].iloc[0]
    title = f"{edit_id} ({edit_type}), seed {seed}"
    print(f"{title}: {' | '.join(clips)}; frames {list(frames)} of {length}")
    notebook.show(gallery.gallery_figure(clips, frames, title), f"gallery_{edit_id}", FIG_DIR)
    shown += 1
print(f"gallery figures: {shown}")
