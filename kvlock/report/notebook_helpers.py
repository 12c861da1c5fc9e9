"""Small helpers the analysis notebooks (notebooks/*.py) need on top of kvlock.report.

Collection and aggregation stay in kvlock.report.collect (`collect`, `aggregate`); this module
only adds what the notebooks need beyond the tables: seed pooling, per-edit-type and paired
seed statistics, traces, knob values from the resolved configs, video frames for a gallery, and
figure display that works under any matplotlib backend (Agg included).
"""

from __future__ import annotations

import io
import json
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kvlock.experiment.metadata import config_hash
from kvlock.experiment.store import safe_name
from kvlock.report.collect import Collection, aggregate, config_labels

# Alignment columns for the Pareto plot's y axis, in order of preference.
ALIGNMENT_COLUMNS = ("clip_text", "clip_text_edit", "clip_dir", "fg_psnr_gt", "fg_lpips_gt")
# KV-Lock knobs of the ablation notebook: display name -> dotted key in the resolved config.
KNOBS = {
    "τ": "method.detector.tau",
    "W": "method.detector.window",
    "κ": "method.detector.active_last",
    "b": "method.guidance.omega_max_ratio",
}
TRACE_COLUMNS = ("step", "t", "sigma2", "active", "alpha_mean", "alpha_q10", "alpha_q50",
                 "alpha_q90", "omega", "s_star", "nfe")


# --- parameters and display ----------------------------------------------------------------


def env_override(name: str, value):
    """`os.environ[name]` when set (and non-empty), else `value` (the notebook's parameter)."""
    return os.environ.get(name) or value


def show(fig, name: str | None = None, fig_dir: str | Path | None = None) -> None:
    """Display `fig` as a PNG (also under Agg, where plt.show() shows nothing), optionally save it
    as `<fig_dir>/<name>.png`, and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    if fig_dir and name:
        path = Path(fig_dir) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    plt.close(fig)
    display(Image(buffer.getvalue()))


# --- rows ----------------------------------------------------------------------------------


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


def alignment_column(aggregated: pd.DataFrame, preferred: Iterable[str] = ALIGNMENT_COLUMNS) -> str | None:
    """The first of `preferred` with a finite value for every config that has ok edits; failing
    that, the one with values for the most configs (earlier wins ties); None if none has any."""
    configs = int((aggregated["n_ok"] > 0).sum()) if "n_ok" in aggregated else len(aggregated)
    counts = {name: int(pd.to_numeric(aggregated[name], errors="coerce").notna().sum())
              for name in preferred if name in aggregated}
    for name, count in counts.items():
        if count and count >= configs:
            return name
    best = max(counts.values(), default=0)
    return next((name for name, count in counts.items() if count == best), None) if best else None


def pareto_figure(aggregated: pd.DataFrame, metric_info: dict, x: str, y: str, title: str):
    """One point per config, the Pareto front dashed (the report's figure, with a title)."""
    from kvlock.report.plots import pareto_figure as report_pareto_figure

    return report_pareto_figure(aggregated, metric_info, x, y, title=title)


# --- paired statistics over seeds ----------------------------------------------------------


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


# --- traces ----------------------------------------------------------------------------------


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


# --- knobs -----------------------------------------------------------------------------------


def config_value(config: str | dict, dotted: str):
    """`config["a"]["b"]` for "a.b" from a row's resolved config (JSON or dict); None if absent."""
    node = json.loads(config) if isinstance(config, str) else config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def knob_frame(rows: pd.DataFrame, knobs: dict[str, str] = KNOBS) -> pd.DataFrame:
    """`rows` with one column per knob (display name), read from each row's config JSON."""
    out = rows.copy()
    for name, dotted in knobs.items():
        out[name] = [config_value(c, dotted) for c in out["config"]]
    return out


def swept(frame: pd.DataFrame, knob: str) -> bool:
    """Whether `knob` takes more than one value within at least one method."""
    values = frame[[knob, "method"]].dropna()
    return bool(len(values)) and bool((values.groupby("method")[knob].nunique() > 1).any())


# --- gallery ---------------------------------------------------------------------------------


def video_paths(row: pd.Series) -> dict[str, Path]:
    """{"edit": videos/<edit>.mp4, "compare": videos/<edit>_compare.mp4} of one result row."""
    stem = Path(row["run_dir"]) / "videos" / safe_name(row["edit_id"])
    return {"edit": stem.with_name(f"{stem.name}.mp4"), "compare": stem.with_name(f"{stem.name}_compare.mp4")}


def gallery_clips(collection: Collection, edit_id: str, labels: Iterable[str] | None = None
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """({"source": clip, "mask": clip, <label>: edited clip, ...}, notes) for one edit, clips as
    (T, H, W, 3) uint8 read with kvlock.data.video_io.read_frames. Source and mask come from a
    `_compare.mp4` (source | mask | edit); an edit whose own mp4 is missing falls back to the
    third panel of its comparison video. `notes` says what could not be shown."""
    from kvlock.data.video_io import read_frames

    rows = ok_rows(collection)
    rows = rows[rows["edit_id"] == edit_id]
    notes: list[str] = []
    if rows.empty:
        return {}, [f"{edit_id}: no ok result rows"]
    wanted = list(dict.fromkeys(rows["label"])) if labels is None else list(labels)
    clips: dict[str, np.ndarray] = {}
    for label in wanted:
        match = rows[rows["label"] == label]
        if match.empty:
            notes.append(f"{edit_id}: no ok row for {label}")
            continue
        paths = video_paths(match.iloc[0])
        if paths["compare"].is_file() and "source" not in clips:
            compare = read_frames(paths["compare"])
            width = compare.shape[2] // 3
            clips["source"], clips["mask"] = compare[:, :, :width], compare[:, :, width:2 * width]
        if paths["edit"].is_file():
            clips[label] = read_frames(paths["edit"])
        elif paths["compare"].is_file():
            compare = read_frames(paths["compare"])
            clips[label] = compare[:, :, 2 * (compare.shape[2] // 3):]
        else:
            notes.append(f"{edit_id}: {label} saved no video (run.save_videos=false?)")
    if "source" not in clips:
        notes.append(f"{edit_id}: no _compare.mp4, so no source / mask panels (run.save_comparison=false?)")
    order = ["source", "mask", *[k for k in clips if k not in ("source", "mask")]]
    return {k: clips[k] for k in order if k in clips}, notes


def gallery_figure(clips: dict[str, np.ndarray], frames: Iterable[int], title: str = ""):
    """Grid: one row per frame index, one column per clip (source | mask | methods)."""
    import matplotlib.pyplot as plt

    frames = list(frames)
    names = list(clips)
    fig, axes = plt.subplots(len(frames), len(names), figsize=(1.9 * len(names), 1.9 * len(frames) + 0.4),
                             dpi=110, squeeze=False)
    for r, index in enumerate(frames):
        for c, name in enumerate(names):
            ax = axes[r][c]
            clip = clips[name]
            if -len(clip) <= index < len(clip):
                ax.imshow(clip[index])
            else:
                ax.text(0.5, 0.5, "no frame", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("\n".join(textwrap.wrap(name, 24)), fontsize=8)
            if c == 0:
                ax.set_ylabel(f"frame {index}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
