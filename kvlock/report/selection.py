"""Row selection over a collection: ok rows with labels, seeds, seed pooling, subsets, and
per-edit-type aggregates (the same labels as the report tables)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from kvlock.experiment.metadata import config_hash
from kvlock.report.collect import Collection, aggregate, config_labels


def ok_rows(collection: Collection) -> pd.DataFrame:
    """The ok rows with a `label` column (the same labels as the report tables)."""
    rows = collection.rows.assign(label=config_labels(collection.rows))
    return rows[rows["status"] == "ok"].copy()


def seeds(collection: Collection) -> list[int]:
    """Distinct seeds among the ok rows."""
    ok = collection.rows[collection.rows["status"] == "ok"]
    return sorted(int(s) for s in ok["seed"].dropna().unique())


def pool_seeds(collection: Collection) -> Collection:
    """The same rows with seed dropped from the config identity, so `aggregate` gives one row per
    method config whose means run over edits × seeds (instead of one row per seed)."""
    rows = collection.rows.copy()
    if rows["seed"].nunique() <= 1:
        return collection

    def seedless_hash(config, original: str) -> str:
        if not isinstance(config, str):  # no resolved config recorded: keep the row's own hash
            return original
        return config_hash({**json.loads(config), "seed": None})

    def seedless_overrides(overrides) -> str:
        if not isinstance(overrides, str):
            return overrides
        return json.dumps([o for o in json.loads(overrides or "[]") if not o.startswith("seed=")])

    rows["config_hash"] = [seedless_hash(c, h) for c, h in zip(rows["config"], rows["config_hash"])]
    if "overrides" in rows:
        rows["overrides"] = rows["overrides"].map(seedless_overrides)
    return Collection(rows, collection.metric_info, collection.files)


def subset(collection: Collection, mask) -> Collection:
    """A Collection of the rows where `mask` (boolean, aligned with `collection.rows`) is true."""
    return Collection(collection.rows[np.asarray(mask, dtype=bool)].copy(), collection.metric_info,
                      collection.files)


def metric_columns(collection: Collection, aggregated: pd.DataFrame | None = None) -> list[str]:
    """Metric columns with at least one finite value (in the aggregated table, if given)."""
    frame = collection.rows if aggregated is None else aggregated
    out = []
    for name in collection.metric_info:
        if name in frame and pd.to_numeric(frame[name], errors="coerce").notna().any():
            out.append(name)
    return out


def per_edit_type(collection: Collection, metrics: Iterable[str]) -> pd.DataFrame:
    """Long table: one row per (edit_type, config label) with n_ok and the mean of each metric."""
    parts = []
    for edit_type in sorted(collection.rows["edit_type"].dropna().unique()):
        part = subset(collection, collection.rows["edit_type"] == edit_type)
        agg = aggregate(part)
        keep = ["label", "method", "n_ok", *[m for m in metrics if m in agg]]
        parts.append(agg[keep].assign(edit_type=edit_type))
    if not parts:
        return pd.DataFrame(columns=["edit_type", "label", "method", "n_ok"])
    frame = pd.concat(parts, ignore_index=True)
    return frame[["edit_type", *[c for c in frame.columns if c != "edit_type"]]]
