"""Pareto plot: background fidelity vs text alignment, one point per method (matplotlib Agg)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

# Alignment columns for the Pareto plot's y axis, in order of preference.
ALIGNMENT_COLUMNS = ("clip_text", "clip_text_edit", "clip_dir", "fg_psnr_gt", "fg_lpips_gt")


def pareto_front(points: list[tuple[float, float]], higher: tuple[bool, bool]) -> list[int]:
    """Indices of the points no other point beats on both axes (in the better direction)."""
    sign = [1 if h else -1 for h in higher]
    scored = [(x * sign[0], y * sign[1]) for x, y in points]
    return [i for i, (x, y) in enumerate(scored)
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in scored)]


def pareto_figure(agg: pd.DataFrame, metric_info: dict, x: str = "bg_psnr", y: str = "clip_text",
                  reference: tuple[str, ...] = ("reconstruct",), title: str | None = None):
    """The figure: one point per config (`label`), `reference` methods (no-edit floors) grey and
    left out of the dashed front. Raises ValueError naming what is missing when no config has
    both values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = [m for m in (x, y) if m not in agg]
    if missing:
        raise ValueError(f"pareto plot needs {', '.join(missing)}, which these runs did not compute")
    values = agg[[x, y]].apply(pd.to_numeric, errors="coerce").astype(float)
    data = agg[[math.isfinite(a) and math.isfinite(b) for a, b in zip(values[x], values[y])]]
    if data.empty:
        raise ValueError(f"pareto plot: no method has both {x} and {y}")
    higher = tuple(bool(metric_info.get(m, {}).get("higher_is_better", True)) for m in (x, y))
    is_ref = data["method"].isin(reference)
    methods = data[~is_ref]
    points = list(zip(methods[x].astype(float), methods[y].astype(float)))
    front = sorted(points[i] for i in pareto_front(points, higher))
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter(methods[x], methods[y], zorder=3, label="methods")
    if is_ref.any():
        ax.scatter(data[is_ref][x], data[is_ref][y], marker="x", color="gray", zorder=3, label="reference (no edit)")
    for px, py, label in zip(data[x], data[y], data["label"]):
        ax.annotate(label, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if len(front) > 1:
        ax.plot(*zip(*front), linestyle="--", color="gray", zorder=2, label="Pareto front")
    ax.legend(loc="best", fontsize=8)
    arrow = {True: "↑", False: "↓"}
    ax.set_xlabel(f"{metric_info.get(x, {}).get('label', x)} {arrow[higher[0]]}")
    ax.set_ylabel(f"{metric_info.get(y, {}).get('label', y)} {arrow[higher[1]]}")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def pareto_plot(agg: pd.DataFrame, path: str | Path, metric_info: dict, x: str = "bg_psnr",
                y: str = "clip_text", reference: tuple[str, ...] = ("reconstruct",)) -> Path:
    """Write the Pareto figure as a PNG at `path`."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(agg, metric_info, x, y, reference)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


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
