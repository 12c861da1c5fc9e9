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
# # 03 · KV-Lock ablation
#
# The paper's ablation table (rows: variance-KV only, ω only, s* only, s*+ω, fixed α 0.5,
# global σ², full KV-Lock) from a sweep such as
# `python -m benchmarks.run -m experiment=kvlock_ablation`, and the effect of each detector /
# guidance knob on the metrics, read from every row's resolved config:
#
# | knob | config key |
# |---|---|
# | τ (detector threshold) | `method.detector.tau` |
# | W (σ² window, fraction of the steps) | `method.detector.window` |
# | κ (active in the last κ of the steps, a fraction) | `method.detector.active_last` |
# | b (ω clamp ratio) | `method.guidance.omega_max_ratio` |
#
# Sweep a knob with e.g. `python -m benchmarks.run -m method=kvlock method.detector.tau=0.003,0.01,0.03`
# (or `hparams_search=kvlock_tau`) into the same results dir.
#
# Set `RESULTS_DIR` below, or the environment variable `KVLOCK_RESULTS_DIR` (it wins).

# %% tags=["parameters"]
RESULTS_DIR = "../multirun/kvlock_ablation"  # a run dir or a sweep dir (searched recursively)
KNOB_METRICS = None  # metrics plotted against the knobs (None: bg_psnr, bg_ssim and the alignment column)
FIG_DIR = None  # save figures as PNG here too (None: only display them)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from kvlock.report import knobs, notebook, plots, selection
from kvlock.report.build import Report
from kvlock.report.collect import aggregate, collect
from kvlock.report.tables import ABLATION_METHODS

RESULTS_DIR = Path(notebook.env_override("KVLOCK_RESULTS_DIR", RESULTS_DIR)).expanduser()
FIG_DIR = notebook.env_override("KVLOCK_FIG_DIR", FIG_DIR)
pd.set_option("display.width", 160, "display.max_columns", 40)
print(f"results dir: {RESULTS_DIR.resolve()}")

# %%
collection = selection.pool_seeds(collect(RESULTS_DIR))
present = set(collection.rows.method)
print("methods found:", ", ".join(sorted(present)))
missing_rows = [f"{name} ({method})" for method, name in ABLATION_METHODS.items() if method not in present]
if missing_rows:
    print(f"ablation rows not in these runs ({len(missing_rows)} of {len(ABLATION_METHODS)}):")
    for item in missing_rows:
        print("  -", item)
others = sorted(present - set(ABLATION_METHODS))
if others:
    print("left out of the ablation table (not ablation rows):", ", ".join(others))

# %% [markdown]
# ## Ablation table
#
# The `kvlock_ablation` layout of `kvlock.report` (VBench columns, background SSIM / PSNR,
# time), then every computed metric of the same rows.

# %%
ablation = selection.subset(collection, collection.rows.method.isin(ABLATION_METHODS))
if ablation.rows.empty:
    print("no ablation rows in these runs: run `python -m benchmarks.run -m experiment=kvlock_ablation`")
    agg = pd.DataFrame()
else:
    report = Report(ablation, aggregate(ablation))
    display(Markdown(report.text("kvlock_ablation")))
    display(Markdown(report.text("auto")))
    agg = report.aggregated
    agg

# %% [markdown]
# ## Knobs
#
# Each knob's values per method (from the resolved configs), then, for every swept knob, the
# metrics against it (one line per method; mean over edits × seeds, bars = ± sd).

# %%
rows = knobs.knob_frame(selection.ok_rows(collection))
family = rows[rows.method.isin(ABLATION_METHODS)]
if family.empty:
    family = rows
    print("no ablation-family rows: knobs of all methods")
values = family.groupby("method")[list(knobs.KNOBS)].agg(lambda s: sorted(s.dropna().unique().tolist()))
display(values)
swept_knobs = [k for k in knobs.KNOBS if knobs.swept(family, k)]
for knob, key in knobs.KNOBS.items():
    if knob not in swept_knobs:
        used = sorted(family[knob].dropna().unique().tolist())
        print(f"{knob} ({key}) not swept in these runs: every run used {used or 'no value'}")

# %%
if KNOB_METRICS is None:
    alignment = plots.alignment_column(agg) if len(agg) else None
    KNOB_METRICS = [m for m in ("bg_psnr", "bg_ssim", alignment) if m]
KNOB_METRICS = [m for m in KNOB_METRICS
                if m in family and pd.to_numeric(family[m], errors="coerce").notna().any()]
figures = 0
if not swept_knobs:
    print("no knob was swept: no knob plots (sweep e.g. method.detector.tau=0.003,0.01,0.03)")
elif not KNOB_METRICS:
    print("no metric with values to plot against the knobs")
else:
    colors = {method: f"C{i}" for i, method in enumerate(sorted(family.method.unique()))}
    for knob in swept_knobs:
        fig, axes = plt.subplots(1, len(KNOB_METRICS), figsize=(4.2 * len(KNOB_METRICS), 3.3), dpi=100,
                                 squeeze=False)
        for metric, ax in zip(KNOB_METRICS, axes[0]):
            data = family[["method", knob, metric]].dropna()
            data[metric] = pd.to_numeric(data[metric])
            for method, group in data.groupby("method"):
                stats = group.groupby(knob)[metric].agg(["mean", "std"]).sort_index()
                if group[knob].nunique() > 1:
                    ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                                capsize=3, label=method, color=colors[method])
                else:
                    ax.scatter(stats.index, stats["mean"], marker="x", s=60, zorder=4,
                               label=f"{method} (not swept)", color=colors[method])
            ax.set_xlabel(f"{knob} ({knobs.KNOBS[knob]})", fontsize=8)
            ax.set_ylabel(collection.metric_info.get(metric, {}).get("label", metric), fontsize=8)
            ax.grid(alpha=0.3)
            ticks = sorted(data[knob].unique())
            if knob == "τ" and min(ticks) > 0:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks], fontsize=8)
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"metrics vs {knob}", fontsize=10)
        fig.tight_layout()
        notebook.show(fig, f"knob_{knobs.KNOBS[knob].rsplit('.', 1)[-1]}", FIG_DIR)
        figures += 1
print(f"knob figures: {figures}")
