"""summary.json of one job: counts, nan-mean aggregates per metric, metric info, config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kvlock.experiment.metadata import RunInfo


def _numbers(values: pd.Series) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce")
    return values[np.isfinite(values)]


def _mean(values: pd.Series) -> float | None:
    values = _numbers(values)
    return float(values.mean()) if len(values) else None


def _failures(frame: pd.DataFrame) -> dict[str, str]:
    """edit_id -> why it did not run (the failed rows' one-line errors)."""
    if "status" not in frame:
        return {}
    failed = frame[frame["status"] != "ok"]
    return {str(e): str(r) for e, r in zip(failed["edit_id"], failed["error"])}


def summarize(frame: pd.DataFrame, info: RunInfo, metric_info: dict) -> dict:
    """Aggregates over the ok rows (nan-mean; `n` = edits with a value) and why values are missing."""
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame

    def column(name: str) -> pd.Series:
        return ok[name] if name in ok else pd.Series(dtype=float)

    reasons = [json.loads(r) for r in column("metrics_not_computed").dropna()]
    metrics = {
        name: {"mean": _mean(column(name)), "n": len(_numbers(column(name))),
               "not_computed": sorted({r[name] for r in reasons if name in r})}
        for name in metric_info
    }
    peak = _numbers(column("peak_mem_mb"))
    return {
        "run_id": info.run_id,
        "method": info.method,
        "config_hash": info.config_hash,
        "git_sha": info.git_sha,
        "counts": {"ok": len(ok), "failed": len(frame) - len(ok), "total": len(frame)},
        "failures": _failures(frame),
        "metrics": metrics,
        "metric_info": metric_info,
        "seconds_mean": _mean(column("seconds")),
        "nfe_mean": _mean(column("nfe")),
        "peak_mem_mb_max": float(peak.max()) if len(peak) else None,
        "peak_mem_kind": next(iter(column("peak_mem_kind").dropna()), None),
        "source_cache_hits": int(column("source_cache_hit").fillna(False).astype(bool).sum()),
        "versions": json.loads(info.versions),
        "config": json.loads(info.config),
    }
