"""The report of a run or sweep dir: collect → aggregate → table text (+ optional plot and edit grid)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kvlock.report.by_edit_type import aggregate_by_edit_type
from kvlock.report.collect import Collection, aggregate, collect, not_computed_reasons
from kvlock.report.gallery import edit_grid
from kvlock.report.plots import pareto_plot
from kvlock.report.render import render
from kvlock.report.tables import TABLES, Table, auto_spec, build_table

TABLE_NAMES = (*TABLES, "auto")


@dataclass
class Report:
    collection: Collection
    aggregated: pd.DataFrame

    @classmethod
    def load(cls, root: str | Path) -> Report:
        collection = collect(root)
        return cls(collection, aggregate(collection))

    def table(self, name: str = "auto") -> Table:
        if name not in TABLE_NAMES:
            raise ValueError(f"Unknown table '{name}'. Available: {', '.join(TABLE_NAMES)}")
        info = self.collection.metric_info
        if name == "auto":
            spec = auto_spec(info, [m for m in info if m in self.aggregated])
        else:
            spec = TABLES[name]
        rows = aggregate_by_edit_type(self.collection) if spec.by_edit_type else self.aggregated
        return build_table(rows, spec, info, not_computed_reasons(self.collection))

    def text(self, name: str = "auto", fmt: str = "markdown") -> str:
        return render(self.table(name), fmt)

    def plot(self, path: str | Path, x: str = "bg_psnr", y: str = "clip_text") -> Path:
        return pareto_plot(self.aggregated, path, self.collection.metric_info, x, y)

    def grid(self, path: str | Path, edit_id: str | None = None) -> Path:
        """One edit across configs as a PNG (kvlock.report.gallery.edit_grid)."""
        return edit_grid(self.collection, path, edit_id)
