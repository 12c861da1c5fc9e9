"""Per-step traces (traces/<edit_id>.json: σ², α, ω, s* per denoising step) as one long frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kvlock.experiment.store import safe_name
from kvlock.report.collect import Collection
from kvlock.report.selection import ok_rows

TRACE_COLUMNS = ("step", "t", "sigma2", "active", "alpha_mean", "alpha_q10", "alpha_q50",
                 "alpha_q90", "omega", "s_star", "nfe")



def load_traces(collection: Collection) -> tuple[pd.DataFrame, list[str]]:
    """(long frame: one row per (config, edit, step) with label, method, edit_id, edit_type, seed
    and the trace columns; list of "run_dir: edit_id" whose trace file is missing)."""
    frames, missing = [], []
    for _, row in ok_rows(collection).iterrows():
        path = Path(row["run_dir"]) / "traces" / f"{safe_name(row['edit_id'])}.json"
        if not path.is_file():
            missing.append(f"{row['run_dir']}: {row['edit_id']}")
            continue
        trace = pd.DataFrame(json.loads(path.read_text()))
        for column in TRACE_COLUMNS:
            if column not in trace:
                trace[column] = np.nan
        for column in trace.columns:
            if column != "active":
                trace[column] = pd.to_numeric(trace[column], errors="coerce")
        trace["active"] = trace["active"].fillna(False).astype(bool)
        frames.append(trace.assign(label=row["label"], method=row["method"], edit_id=row["edit_id"],
                                   edit_type=row["edit_type"], seed=row["seed"]))
    if not frames:
        return pd.DataFrame(columns=["label", "method", "edit_id", "edit_type", "seed", *TRACE_COLUMNS]), missing
    return pd.concat(frames, ignore_index=True), missing


def trace_summary(traces: pd.DataFrame) -> pd.DataFrame:
    """Per config label: steps, active steps (mean over edits), first active step, and the mean
    σ², α, ω, s* over the steps (NaN where the method does not compute them)."""
    if traces.empty:
        return pd.DataFrame()
    per_edit = traces.groupby(["label", "edit_id", "seed"]).agg(
        steps=("step", "size"), active_steps=("active", "sum"),
        first_active=("step", lambda s: s[traces.loc[s.index, "active"]].min()),
        sigma2=("sigma2", "mean"), alpha_mean=("alpha_mean", "mean"), omega=("omega", "mean"),
        s_star=("s_star", "mean"))
    return per_edit.groupby("label").mean(numeric_only=True)
