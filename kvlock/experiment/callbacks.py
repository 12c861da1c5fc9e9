"""Hydra callback: at the end of a multirun, print the report and save it in the sweep dir."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Uses the root config's `report:` block (enabled, tables, format, plot, plot_axes, grid,
    grid_edit); writes <sweep dir>/report.<md|tex|csv>, pareto.png and grid.png."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        options = config.get("report") or {}
        if not options.get("enabled", True):
            return
        from kvlock.experiment.atomic import write_text
        from kvlock.report.build import Report

        sweep_dir = Path(config.hydra.sweep.dir)
        fmt = options.get("format", "markdown")
        try:
            report = Report.load(sweep_dir)
            text = "\n".join(report.text(name, fmt) for name in options.get("tables", ["auto"]))
        except (FileNotFoundError, ValueError) as err:
            log.warning("no report for %s: %s", sweep_dir, err)
            return
        suffix = {"markdown": "md", "latex": "tex", "csv": "csv"}[fmt]
        write_text(sweep_dir / f"report.{suffix}", text)
        print(f"\nReport of {sweep_dir}\n\n{text}", flush=True)
        if options.get("plot", True):
            try:
                x, y = options.get("plot_axes", ["bg_psnr", "clip_text"])
                print(f"Pareto plot: {report.plot(sweep_dir / 'pareto.png', x, y)}", flush=True)
            except ValueError as err:
                print(f"Pareto plot skipped: {err}", flush=True)
        if options.get("grid", False):
            try:
                path = report.grid(sweep_dir / "grid.png", options.get("grid_edit"))
                print(f"Edit grid: {path}", flush=True)
            except ValueError as err:
                print(f"Edit grid skipped: {err}", flush=True)
