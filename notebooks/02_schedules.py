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
# # 02 · Schedules: σ², α, ω per step
#
# Every edit saves its per-step trace (`traces/<edit_id>.json`, one dict per denoising step:
# `step, t, sigma2, active, alpha_mean, alpha_q10/q50/q90, omega, s_star, nfe`). This notebook
# plots KV-Lock's hallucination signal σ², its background fusion weight α (mean, with the
# 10–90 % band over background tokens) and guidance scale ω against the baselines' constant
# schedules, against the step index and against t, with the steps where KV-Lock's detector was
# active shaded.
#
# Set `RESULTS_DIR` below, or the environment variable `KVLOCK_RESULTS_DIR` (it wins).

# %% tags=["parameters"]
RESULTS_DIR = "../multirun/demo"  # a run dir or a sweep dir (searched recursively)
EDIT_ID = None  # the edit to plot (None: the first edit KV-Lock ran)
SEED = None  # the seed to plot (None: the smallest)
FOCUS = "kvlock"  # the method whose detector activity is shaded
FIG_DIR = None  # save figures as PNG here too (None: only display them)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from kvlock.report import notebook, selection
from kvlock.report.collect import collect
from kvlock.report.traces import load_traces, trace_summary

RESULTS_DIR = Path(notebook.env_override("KVLOCK_RESULTS_DIR", RESULTS_DIR)).expanduser()
FIG_DIR = notebook.env_override("KVLOCK_FIG_DIR", FIG_DIR)
pd.set_option("display.width", 160, "display.max_columns", 40)
print(f"results dir: {RESULTS_DIR.resolve()}")

# %%
collection = selection.pool_seeds(collect(RESULTS_DIR))
traces, missing = load_traces(collection)
print(f"{traces.groupby(['label', 'edit_id', 'seed']).ngroups if len(traces) else 0} traces, "
      f"{len(missing)} missing")
for item in missing[:10]:
    print("  no trace file:", item)
if traces.empty:
    print("no traces to plot: the runs saved none (or have no ok rows)")

# %% [markdown]
# ## Summary over all edits
#
# Per config: steps, active steps and first active step of the detector, and the mean σ², α,
# ω and s* over the steps (NaN where the method does not compute them, e.g. σ² of hard lock).

# %%
if not traces.empty:
    display(trace_summary(traces).round(4))

# %%
focus = traces[traces.method == FOCUS] if not traces.empty else traces
if traces.empty:
    edit_id = seed = None
elif EDIT_ID is not None:
    edit_id = EDIT_ID
else:
    edit_id = (focus if len(focus) else traces).edit_id.iloc[0]
    if focus.empty:
        print(f"no {FOCUS} traces: plotting {edit_id} without detector shading")
if edit_id is not None:
    chosen = traces[traces.edit_id == edit_id]
    seed = SEED if SEED is not None else (chosen.seed.min() if len(chosen) else None)
    chosen = chosen[chosen.seed == seed]
    if chosen.empty:
        print(f"no traces for edit {edit_id!r} (seed {seed}); edits: {sorted(traces.edit_id.unique())}")
    else:
        print(f"edit {edit_id}, seed {seed}: {', '.join(chosen.label.unique())}")

# %% [markdown]
# ## Per-step schedules of one edit
#
# Left: against the step index; right: against t (1 → 0, so time runs left to right).
# Shaded: steps where the `FOCUS` method's detector was active (σ² window full and inside the
# last κ steps).

# %%
PANELS = [("sigma2", "σ² (hallucination signal)"), ("alpha_mean", "α (bg K/V fusion)"),
          ("omega", "ω (guidance scale)"), ("s_star", "s* (CFG-Zero* scale)")]


def shade(ax, trace: pd.DataFrame, x: str) -> None:
    """Shade the active steps of `trace` on axis `x` (half a step either side)."""
    xs = trace[x].to_numpy(dtype=float)
    if len(xs) < 2:
        return
    edges = np.concatenate([[xs[0] - (xs[1] - xs[0]) / 2], (xs[:-1] + xs[1:]) / 2,
                            [xs[-1] + (xs[-1] - xs[-2]) / 2]])
    for i, active in enumerate(trace["active"].to_numpy()):
        if active:
            ax.axvspan(edges[i], edges[i + 1], color="tab:orange", alpha=0.15, lw=0)


figure_made = False
if edit_id is not None and not chosen.empty:
    focus_trace = chosen[chosen.method == FOCUS].sort_values("step")
    colors = {label: f"C{i}" for i, label in enumerate(chosen.label.unique())}
    fig, axes = plt.subplots(len(PANELS), 2, figsize=(11, 2.3 * len(PANELS)), dpi=100, sharex="col")
    for (column, name), row in zip(PANELS, axes):
        for x, ax in zip(("step", "t"), row):
            for label, trace in chosen.sort_values("step").groupby("label", sort=False):
                is_focus = trace.method.iloc[0] == FOCUS
                style = {"lw": 2.2, "zorder": 3} if is_focus else {"lw": 1.2, "ls": "--"}
                if trace[column].notna().any():
                    ax.plot(trace[x], trace[column], marker="o", ms=3, label=label, color=colors[label], **style)
                if column == "alpha_mean" and trace.alpha_q10.notna().any():
                    ax.fill_between(trace[x], trace.alpha_q10, trace.alpha_q90, color=colors[label], alpha=0.15)
            if len(focus_trace):
                shade(ax, focus_trace, x)
            ax.set_ylabel(name, fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][1].invert_xaxis()  # shared by the column: t runs 1 → 0, left to right
    axes[-1][0].set_xlabel("step")
    axes[-1][1].set_xlabel("t")
    legend = {}
    for ax in axes[:, 0]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=min(len(legend), 4), fontsize=8)
    fig.suptitle(f"{edit_id} (seed {seed}); shaded: steps where {FOCUS}'s detector was active", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    notebook.show(fig, f"schedules_{edit_id}", FIG_DIR)
    figure_made = True
    empty = [name for column, name in PANELS if chosen[column].isna().all()]
    if empty:
        print("no values to plot for:", ", ".join(empty))
    flat = [label for label, trace in chosen.groupby("label")
            if trace[["alpha_mean", "omega"]].nunique().max() <= 1]
    if flat:
        print("constant α and ω schedules:", ", ".join(flat))

# %% [markdown]
# ## Detector activity over all edits
#
# Fraction of edits in which the `FOCUS` method's detector was active at each step, and its
# mean α per step with the spread over edits.

# %%
if focus.empty:
    print(f"no {FOCUS} traces in these runs: nothing to show")
else:
    per_step = focus.groupby("step").agg(t=("t", "mean"), active=("active", "mean"),
                                         alpha=("alpha_mean", "mean"), alpha_std=("alpha_mean", "std"),
                                         sigma2=("sigma2", "mean"), omega=("omega", "mean"))
    display(per_step.round(4))
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    ax.bar(per_step.index, per_step.active, color="tab:orange", alpha=0.3, label="fraction active")
    ax.errorbar(per_step.index, per_step.alpha, yerr=per_step.alpha_std.fillna(0), marker="o",
                label="α mean ± sd over edits")
    ax.set_xlabel("step")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"{FOCUS}: detector activity over {focus.groupby(['edit_id', 'seed']).ngroups} edit runs", fontsize=10)
    ax.grid(alpha=0.3)
    notebook.show(fig, f"activity_{FOCUS}", FIG_DIR)
    figure_made = True
print("figures shown:", figure_made)
