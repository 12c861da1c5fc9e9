"""Paired comparison of two methods on the same edits, from a sweep's results.

    python -m benchmarks.toy_compare <sweep dir> [--methods kvlock hard_lock] [--metrics ...]

For each metric: both methods' means over the edits both finished, the paired difference
(first − second) with a seeded 95 % bootstrap interval, per edit type and overall. Prints a
Markdown table (the `benchmarks/RESULTS.md` toy-model section is this output).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from kvlock.report.collect import collect
from kvlock.report.selection import ok_rows
from kvlock.report.stats import bootstrap_ci

DEFAULT_METRICS = ("fg_psnr_gt", "oracle_edit_acc", "bg_psnr", "bg_ssim")


def paired_rows(root: str, first: str, second: str, metrics: list[str]) -> pd.DataFrame:
    """One row per edit both configs finished: edit_id, edit_type, <metric>_<label> columns."""
    rows = ok_rows(collect(root))
    missing = {first, second} - set(rows["label"])
    if missing:
        raise ValueError(f"{root}: no finished edits of {sorted(missing)}; found {sorted(set(rows['label']))}")
    wide = rows[rows["label"].isin([first, second])].pivot_table(
        index=["edit_id", "edit_type"], columns="label", values=list(metrics), aggfunc="first")
    wide.columns = [f"{metric}_{label}" for metric, label in wide.columns]
    return wide.reset_index()


def compare(table: pd.DataFrame, first: str, second: str, metrics: list[str]) -> pd.DataFrame:
    """Per metric and edit type (and "all"): n, means, mean difference and its interval."""
    out = []
    groups = [("all", table), *table.groupby("edit_type")]
    for metric in metrics:
        for edit_type, group in groups:
            a = group[f"{metric}_{first}"].to_numpy(float)
            b = group[f"{metric}_{second}"].to_numpy(float)
            both = ~np.isnan(a) & ~np.isnan(b)
            diff = a[both] - b[both]
            low, high = bootstrap_ci(diff, n_boot=10_000) if len(diff) >= 2 else (np.nan, np.nan)
            out.append({"metric": metric, "edit_type": edit_type, "n": int(both.sum()),
                        first: a[both].mean(), second: b[both].mean(),
                        "difference": diff.mean() if both.any() else np.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(out)


def to_markdown(result: pd.DataFrame, first: str, second: str) -> str:
    lines = [f"| metric | edits | n | {first} | {second} | {first} − {second} [95 % CI] |",
             "|---|---|---|---|---|---|"]
    for r in result.itertuples(index=False):
        r = r._asdict()
        lines.append(f"| {r['metric']} | {r['edit_type']} | {r['n']} | {r[first]:.3f} | {r[second]:.3f} | "
                     f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="sweep (or run) dir holding results.parquet files")
    parser.add_argument("--methods", nargs=2, default=["kvlock", "hard_lock"], metavar=("FIRST", "SECOND"))
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    args = parser.parse_args(argv)
    first, second = args.methods
    table = paired_rows(args.root, first, second, args.metrics)
    print(to_markdown(compare(table, first, second, args.metrics), first, second))


if __name__ == "__main__":
    main()
