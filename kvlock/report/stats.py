"""Paired statistics over seeds: bootstrap intervals, Wilcoxon p-values, and one config against
the others on a metric."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kvlock.report.collect import Collection
from kvlock.report.selection import ok_rows, pool_seeds, seeds


def bootstrap_ci(values: np.ndarray, n_boot: int = 5000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; NaN when undefined (all-zero differences, or
    scipy not installed)."""
    if not np.any(diffs != 0):
        return float("nan")
    try:
        from scipy.stats import wilcoxon
    except ImportError:
        return float("nan")
    try:
        return float(wilcoxon(diffs, zero_method="zsplit").pvalue)
    except ValueError:
        return float("nan")


def paired_significance(collection: Collection, metric: str, reference: str = "kvlock",
                        n_boot: int = 5000, level: float = 0.95, min_pairs: int = 5) -> pd.DataFrame:
    """Reference config vs every other config on `metric`, paired by (edit_id, seed).

    One row per other config: n_pairs, mean of (reference - other), its bootstrap CI, the
    Wilcoxon signed-rank p-value, and a verdict: "better" / "worse" (the CI excludes 0, in the
    metric's better direction), "n.s.", or "too few pairs" below `min_pairs` (a bootstrap CI of
    2 or 3 pairs means nothing). Seeds are pooled (`pool_seeds`) first, so each config label is
    seed-free. Raises ValueError with the reason when the comparison is impossible (fewer than
    2 seeds, no reference rows, metric absent).
    """
    found = seeds(collection)
    if len(found) < 2:
        raise ValueError(f"significance needs ≥ 2 seeds; these runs have {len(found)} ({found})")
    rows = ok_rows(pool_seeds(collection))
    if metric not in rows or pd.to_numeric(rows[metric], errors="coerce").notna().sum() == 0:
        raise ValueError(f"{metric} was not computed in these runs")
    rows[metric] = pd.to_numeric(rows[metric], errors="coerce")
    ref_labels = sorted(rows.loc[rows["method"] == reference, "label"].unique())
    if not ref_labels:
        raise ValueError(f"no ok rows of the reference method '{reference}'")
    wide = rows.pivot_table(index=["edit_id", "seed"], columns="label", values=metric, aggfunc="mean")
    higher = bool(collection.metric_info.get(metric, {}).get("higher_is_better", True))
    out = []
    for ref in ref_labels:
        for other in wide.columns:
            if other == ref:
                continue
            pair = wide[[ref, other]].dropna()
            diffs = (pair[ref] - pair[other]).to_numpy(dtype=float)
            lo = hi = p = float("nan")
            if len(diffs) >= 2:
                lo, hi = bootstrap_ci(diffs, n_boot, level)
                p = wilcoxon_p(diffs)
            if len(diffs) < min_pairs:
                verdict = f"too few pairs (< {min_pairs})"
            elif (lo > 0) if higher else (hi < 0):
                verdict = "better"
            elif (hi < 0) if higher else (lo > 0):
                verdict = "worse"
            else:
                verdict = "n.s."
            out.append({"reference": ref, "other": other, "metric": metric, "n_pairs": len(diffs),
                        "mean_diff": float(diffs.mean()) if len(diffs) else float("nan"),
                        "ci_low": lo, "ci_high": hi, "wilcoxon_p": p, "verdict": verdict})
    return pd.DataFrame(out)
