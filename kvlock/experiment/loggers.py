"""Loggers mirror the harness's own files elsewhere (`logger=csv|wandb|none`); the run dir
(rows/, results.parquet, summary.json) stays the source of truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from kvlock.experiment.artifacts import trace_path
from kvlock.experiment.atomic import atomic_write
from kvlock.experiment.metadata import RunInfo
from kvlock.experiment.store import safe_name

BULKY = ("config", "versions")  # JSON columns kept out of CSV and W&B tables
TRACE_STEP = "trace/step"  # the x axis of every per-step series (W&B define_metric)


def trace_values(step_row: dict) -> dict[str, float]:
    """The finite numeric entries of one trace step (booleans as 0/1), without `step`: whatever
    the engine records (σ², α quantiles, ω, s*, ...)."""
    out = {}
    for key, value in step_row.items():
        if key == "step" or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def trace_frame(traces: dict[str, list[dict]]) -> pd.DataFrame:
    """{edit_id: trace} -> long frame: edit_id, step and one column per numeric trace key."""
    rows = [{"edit_id": edit_id, "step": step_row["step"], **trace_values(step_row)}
            for edit_id, trace in traces.items() for step_row in trace]
    return pd.DataFrame(rows)


def trace_summary_figure(frame: pd.DataFrame):
    """One panel per trace quantity against the step: every edit thin, the mean over edits bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c for c in frame.columns if c not in ("edit_id", "step")]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), dpi=100, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for _, edit in frame.groupby("edit_id"):
            ax.plot(edit["step"], edit[key], color="tab:blue", alpha=0.25, linewidth=0.8)
        mean = frame.groupby("step")[key].mean()
        ax.plot(mean.index, mean.values, color="tab:blue", linewidth=2, label="mean over edits")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


class Logger:
    """`logger=none`: nothing beyond the run dir."""

    def log_edit(self, row: dict, videos: dict[str, Path]) -> None:
        """Called after each edit with its row and the videos written."""

    def finish(self, frame: pd.DataFrame, summary: dict) -> None:
        """Called once at the end of the job (also after an abort) with all rows."""

    def close(self, failed: bool = False) -> None:
        """Release resources; always called (finally)."""


class CsvLogger(Logger):
    """`metrics.csv` beside results.parquet: every row without the bulky JSON columns."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.csv"

    def finish(self, frame: pd.DataFrame, summary: dict) -> None:
        slim = frame.drop(columns=[c for c in BULKY if c in frame])
        atomic_write(self.path, lambda tmp: slim.to_csv(tmp, index=False))


class WandbLogger(Logger):
    """One W&B run per Hydra job (offline by default, files under <run dir>/wandb/): resolved
    config, one history step per edit, the comparison videos, a results table and a summary; and
    each edit's per-step trace (traces/<edit_id>.json) as series `trace/<edit_id>/<key>` against
    `trace/step` (every numeric key the engine records: σ², α, ω, s*, ...; `log_traces`), plus a
    `traces` table and a `trace_summary` plot (mean over edits per step) at the end."""

    def __init__(self, cfg: dict, run_dir: Path, info: RunInfo, config: dict):
        import wandb

        self.wandb, self.log_videos = wandb, bool(cfg.get("log_videos", True))
        self.log_traces, self.traces = bool(cfg.get("log_traces", True)), {}
        run_dir = self.run_dir = Path(run_dir).resolve()
        self.run = wandb.init(
            project=cfg.get("project"), entity=cfg.get("entity"), mode=cfg.get("mode", "offline"),
            group=cfg.get("group") or run_dir.parent.name, job_type=cfg.get("job_type") or info.method,
            tags=list(cfg.get("tags") or []), name=info.run_id, config=config, dir=str(run_dir),
            reinit="finish_previous", settings=wandb.Settings(quiet=True, console="off"),
        )
        self.run.define_metric(TRACE_STEP)
        self.run.define_metric("trace/*", step_metric=TRACE_STEP)

    def log_edit(self, row: dict, videos: dict[str, Path]) -> None:
        data = {k: v for k, v in row.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"}
        data["ok"] = int(row["status"] == "ok")
        if self.log_videos and "compare" in videos:
            data["compare"] = self.wandb.Video(str(videos["compare"]), caption=row["edit_id"], format="mp4")
        self.run.log(data)
        path = trace_path(self.run_dir, row["edit_id"])
        if self.log_traces and row["status"] == "ok" and path.is_file():
            self._log_trace(row["edit_id"], json.loads(path.read_text()))

    def _log_trace(self, edit_id: str, trace: list[dict]) -> None:
        """One history row per denoising step, indexed by `trace/step`."""
        self.traces[edit_id] = trace
        prefix = f"trace/{safe_name(edit_id)}"
        for step_row in trace:
            values = trace_values(step_row)
            series = {f"{prefix}/{key}": value for key, value in values.items()}
            self.run.log({TRACE_STEP: step_row["step"], **series})

    def finish(self, frame: pd.DataFrame, summary: dict) -> None:
        slim = frame.drop(columns=[c for c in BULKY if c in frame]).astype(object)
        slim = slim.where(slim.notna(), None)
        self.run.log({"results": self.wandb.Table(dataframe=slim)})
        self.run.summary.update({f"edits_{k}": v for k, v in summary["counts"].items()})
        self.run.summary.update({f"{name}/mean": m["mean"] for name, m in summary["metrics"].items()
                                 if m["mean"] is not None and math.isfinite(m["mean"])})
        if self.traces:
            import matplotlib.pyplot as plt

            frame = trace_frame(self.traces)
            figure = trace_summary_figure(frame)
            self.run.log({"traces": self.wandb.Table(dataframe=frame),
                          "trace_summary": self.wandb.Image(figure)})
            plt.close(figure)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def build_logger(cfg: dict, run_dir: Path, info: RunInfo, config: dict) -> Logger:
    kind = cfg.get("kind", "none")
    if kind == "wandb":
        return WandbLogger(cfg, run_dir, info, config)
    if kind == "csv":
        return CsvLogger(run_dir)
    if kind == "none":
        return Logger()
    raise ValueError(f"Unknown logger '{kind}'. Available: csv, none, wandb")
