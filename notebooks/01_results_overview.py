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
# # 01 · Results overview
#
# The main table of a run or sweep directory (built by `kvlock.report`, the same tables as
# `python -m benchmarks.report`), a per-edit-type breakdown, the Pareto trade-off between
# background fidelity and text alignment, and paired significance over seeds.
#
# Set `RESULTS_DIR` below, or the environment variable `KVLOCK_RESULTS_DIR` (it wins).

# %% tags=["parameters"]
RESULTS_DIR = "../multirun/demo"  # a run dir or a sweep dir (searched recursively)
TABLE = "kvlock_main"  # kvlock_main | kvlock_ablation | kvedit | auto
REFERENCE = "kvlock"  # method the significance tests compare every other config against
MIN_PAIRS = 5  # fewest (edit, seed) pairs for a better / worse verdict
FIG_DIR = None  # save figures as PNG here too (None: only display them)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from kvlock.report import notebook, plots, selection, stats
from kvlock.report.build import Report
from kvlock.report.collect import aggregate, collect, not_computed_reasons

RESULTS_DIR = Path(notebook.env_override("KVLOCK_RESULTS_DIR", RESULTS_DIR)).expanduser()
FIG_DIR = notebook.env_override("KVLOCK_FIG_DIR", FIG_DIR)
pd.set_option("display.width", 160, "display.max_columns", 40)
print(f"results dir: {RESULTS_DIR.resolve()}")

# %%
collection = collect(RESULTS_DIR)
rows = collection.rows
found_seeds = selection.seeds(collection)
print(f"{len(collection.files)} results.parquet files, {len(rows)} rows "
      f"({int((rows.status == 'ok').sum())} ok, {int((rows.status != 'ok').sum())} failed)")
print("methods:", ", ".join(sorted(rows.method.unique())))
print("edit types:", ", ".join(sorted(rows.edit_type.dropna().unique())))
print("seeds:", found_seeds)
failed = rows[rows.status != "ok"]
if len(failed):
    display(failed[["method", "edit_id", "seed", "error"]])

# %% [markdown]
# ## Main table
#
# Seeds are pooled: each config's mean runs over edits × seeds (the report CLI keeps seeds
# apart when they were swept). Metrics this machine could not compute keep their column,
# marked n/c with the reason.

# %%
pooled = selection.pool_seeds(collection)
report = Report(pooled, aggregate(pooled))
display(Markdown(report.text(TABLE)))
display(Markdown(report.text("auto")))
agg = report.aggregated
metrics = selection.metric_columns(collection, agg)
print("metric columns with values:", ", ".join(metrics) or "none")
reasons = not_computed_reasons(collection)
for name, reason in reasons.items():
    print(f"  not computed: {name}: {reason}")
agg

# %% [markdown]
# ## Per edit type
#
# Mean of each metric per config and edit type (one table per metric, edit types as columns).

# %%
by_type = selection.per_edit_type(pooled, metrics)
if by_type.empty or not metrics:
    print("no per-edit-type breakdown: no ok rows with metric values")
else:
    print(f"edit types: {', '.join(by_type.edit_type.unique())}")
    for metric in metrics:
        table = by_type.pivot_table(index="label", columns="edit_type", values=metric)
        display(Markdown(f"**{collection.metric_info.get(metric, {}).get('label', metric)}**"))
        display(table.round(3))

# %% [markdown]
# ## Pareto: background fidelity vs text alignment
#
# x = `bg_psnr` (else `bg_psnr_bgonly`, `bg_ssim`); y = `clip_text` when computed, else the
# first available of `clip_text_edit`, `clip_dir`, `fg_psnr_gt` (synthetic ground truth),
# `fg_lpips_gt`. The title says which ran.

# %%
x_metric = plots.alignment_column(agg, ("bg_psnr", "bg_psnr_bgonly", "bg_ssim"))  # first with values
y_metric = plots.alignment_column(agg)
if x_metric is None:
    print("Pareto plot skipped: no background-fidelity column (bg_psnr, bg_psnr_bgonly, bg_ssim) "
          "has values in these runs")
elif y_metric is None:
    print("Pareto plot skipped: no alignment column (clip_text, clip_text_edit, clip_dir, "
          "fg_psnr_gt, fg_lpips_gt) has values in these runs")
else:
    def fallback(metric: str, wanted: str) -> str:
        return "" if metric == wanted else f" ({wanted} {'not computed' if wanted not in agg else 'is NaN'})"

    title = (f"Background fidelity vs alignment: x = {x_metric}{fallback(x_metric, 'bg_psnr')}, "
             f"y = {y_metric}{fallback(y_metric, 'clip_text')}")
    print(title)
    notebook.show(plots.pareto_figure(agg, collection.metric_info, x_metric, y_metric, title=title), "pareto", FIG_DIR)

# %% [markdown]
# ## Significance over seeds
#
# For every metric: `REFERENCE` minus each other config, paired per (edit, seed); mean
# difference with a 95 % bootstrap CI and the Wilcoxon signed-rank p-value. `verdict` is
# better / worse when the CI excludes 0 (in the metric's better direction), n.s. otherwise, and
# "too few pairs" below `MIN_PAIRS` pairs (edits × seeds): a CI of 2 pairs means nothing, and
# the Wilcoxon p-value cannot go below 2 / 2ⁿ.

# %%
significance = []
for metric in metrics:
    try:
        significance.append(stats.paired_significance(collection, metric, REFERENCE, min_pairs=MIN_PAIRS))
    except ValueError as err:
        print(f"significance skipped for {metric}: {err}")
        if len(found_seeds) < 2:
            print("(significance needs ≥ 2 seeds: rerun the sweep with e.g. `seed=0,1,2`)")
            break
if significance:
    significance = pd.concat(significance, ignore_index=True)
    display(significance.round(4))
    counts = significance.verdict.value_counts()
    print(f"{REFERENCE} vs the others, {len(significance)} comparisons: "
          + ", ".join(f"{verdict}: {n}" for verdict, n in counts.items()))
