"""Aggregate per (config, edit type), then over the types: the FiVE-Bench protocol (results/
avg_metrics_in_csv.py: the mean of each edit file, one file per edit type, then the mean of
those means), one row per (config, type) and one "mean over types" row per config."""

from __future__ import annotations

import pandas as pd

from kvlock.report.collect import STATS, Collection, config_labels

OVERALL = "mean over types"


def aggregate_by_edit_type(collection: Collection) -> pd.DataFrame:
    """Rows in the layout of `aggregate()` (label, method, n_ok, n_total, metric means), labelled
    "<config label> · <edit type>" in the order the types first occur (FiVE: edit1..edit6), then "<config label> · mean over types" whose
    metrics are the unweighted mean of the type means and whose counts are the sums."""
    rows = collection.rows.copy()
    rows["label"] = config_labels(rows)
    if "steps" in rows:
        rows["sec_per_step"] = pd.to_numeric(rows["seconds"], errors="coerce") / rows["steps"]
    rows["edit_type"] = rows["edit_type"].fillna("").astype(str)
    numeric = [c for c in [*collection.metric_info, *STATS, "sec_per_step"] if c in rows]
    out = []
    for label, config in rows.groupby("label", sort=True):
        method = config["method"].iloc[0]
        per_type = []
        for edit_type, group in config.groupby("edit_type", sort=False):  # the dataset's order
            ok = group[group["status"] == "ok"]
            means = ok[numeric].apply(pd.to_numeric, errors="coerce").mean()
            per_type.append({"label": f"{label} · {edit_type or '(no type)'}", "method": method,
                             "n_total": len(group), "n_ok": len(ok), **means.to_dict()})
        overall = pd.DataFrame(per_type)[numeric].mean() if numeric else pd.Series(dtype=float)
        out += per_type
        out.append({"label": f"{label} · {OVERALL}", "method": method,
                    "n_total": sum(r["n_total"] for r in per_type),
                    "n_ok": sum(r["n_ok"] for r in per_type), **overall.to_dict()})
    return pd.DataFrame(out)
