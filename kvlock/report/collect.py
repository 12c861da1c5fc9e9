"""Collect results.parquet files under a run or sweep dir and aggregate one row per method."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SKIP_DIRS = {"wandb", ".submitit", ".cache", "rows", "traces", "videos"}
STATS = ("seconds", "sec_per_step", "nfe", "peak_mem_mb")


@dataclass
class Collection:
    """Every result row under a dir (one per config and edit) and the merged metric info."""

    rows: pd.DataFrame
    metric_info: dict[str, dict]
    files: list[Path]


def find_results(root: str | Path) -> list[Path]:
    """results.parquet files under `root` (itself a run dir, or a sweep / outputs tree)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such run or sweep dir")
    found = []
    for path in sorted(root.rglob("results.parquet")):
        if not SKIP_DIRS & set(path.relative_to(root).parts[:-1]):
            found.append(path)
    return found


def collect(root: str | Path) -> Collection:
    """Concatenate all results; a (config_hash, edit_id) found twice (the same job in two dirs)
    counts once, preferring an ok row."""
    files = find_results(root)
    if not files:
        raise FileNotFoundError(f"{root}: no results.parquet found")
    frames, info = [], {}
    for path in files:
        frame = pd.read_parquet(path)
        frame["run_dir"] = str(path.parent)
        frames.append(frame)
        summary = path.parent / "summary.json"
        if summary.is_file():
            info.update(json.loads(summary.read_text()).get("metric_info", {}))
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.sort_values("status", key=lambda s: s.eq("ok"), kind="stable")
    rows = rows.drop_duplicates(["config_hash", "edit_id"], keep="last").sort_index()
    return Collection(rows, info, files)


# Overrides that do not change results: left out of the labels that tell configs apart.
INCIDENTAL_OVERRIDES = ("hydra", "report.", "logger", "run.", "paths.", "cache.", "name=")


def config_labels(rows: pd.DataFrame) -> pd.Series:
    """Method name per config; configs sharing a method name get their distinguishing overrides."""
    configs = rows.drop_duplicates("config_hash").set_index("config_hash")
    labels = {}
    for method, group in configs.groupby("method"):
        if len(group) == 1:
            labels[group.index[0]] = method
            continue
        sets = {h: set(json.loads(o or "[]")) for h, o in group["overrides"].items()}
        common = set.intersection(*sets.values())
        for config_hash, overrides in sets.items():
            extra = sorted(o.removeprefix("method.") for o in overrides - common
                           if not o.startswith(INCIDENTAL_OVERRIDES))
            labels[config_hash] = f"{method} [{', '.join(extra) or config_hash[:8]}]"
    return rows["config_hash"].map(labels)


def aggregate(collection: Collection) -> pd.DataFrame:
    """One row per config (label): `method`, `n_ok`, `n_total`, nan-means over ok edits of every
    metric and of seconds / sec_per_step / nfe, and the max peak_mem_mb."""
    rows = collection.rows.copy()
    rows["label"] = config_labels(rows)
    if "steps" in rows:
        rows["sec_per_step"] = pd.to_numeric(rows["seconds"], errors="coerce") / rows["steps"]
    ok = rows[rows["status"] == "ok"]
    numeric = [c for c in [*collection.metric_info, *STATS] if c in rows]
    values = ok[numeric].apply(pd.to_numeric, errors="coerce").groupby(ok["label"])
    table = values.mean()  # skips NaN: a nan-mean
    for name in numeric:  # VBench SC/BC: frame-weighted across videos (`<metric>_pairs` weights)
        if f"{name}_pairs" in ok:
            table[name] = _weighted_mean(ok, name, f"{name}_pairs")
    if "peak_mem_mb" in table:
        table["peak_mem_mb"] = values["peak_mem_mb"].max()
    counts = rows.groupby("label").agg(method=("method", "first"), n_total=("edit_id", "size"),
                                       n_ok=("status", lambda s: int((s == "ok").sum())))
    return counts.join(table).reset_index()


def _weighted_mean(ok: pd.DataFrame, column: str, weight: str) -> pd.Series:
    """Per-label sum(value * weight) / sum(weight) over rows where the value is defined."""
    value = pd.to_numeric(ok[column], errors="coerce")
    w = pd.to_numeric(ok[weight], errors="coerce").where(value.notna(), 0.0).fillna(0.0)
    total = (value.fillna(0.0) * w).groupby(ok["label"]).sum()
    return total / w.groupby(ok["label"]).sum().replace(0.0, float("nan"))


def not_computed_reasons(collection: Collection) -> dict[str, str]:
    """{metric: most frequent reason it was not computed} over the ok rows."""
    ok = collection.rows[collection.rows["status"] == "ok"]
    reasons: dict[str, list[str]] = {}
    for text in ok.get("metrics_not_computed", pd.Series(dtype=object)).dropna():
        for name, reason in json.loads(text).items():
            reasons.setdefault(name, []).append(reason)
    return {name: max(set(values), key=values.count) for name, values in reasons.items()}
