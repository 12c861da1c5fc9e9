"""Loggers mirror the harness's own files elsewhere (`logger=csv|wandb|none`); the run dir
(rows/, results.parquet, summary.json) stays the source of truth."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from kvlock.experiment.atomic import atomic_write
from kvlock.experiment.metadata import RunInfo

BULKY = ("config", "versions")  # JSON columns kept out of CSV and W&B tables


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
    config, one history step per edit, the comparison videos, a results table and a summary."""

    def __init__(self, cfg: dict, run_dir: Path, info: RunInfo, config: dict):
        import wandb

        self.wandb, self.log_videos = wandb, bool(cfg.get("log_videos", True))
        run_dir = Path(run_dir).resolve()
        self.run = wandb.init(
            project=cfg.get("project"), entity=cfg.get("entity"), mode=cfg.get("mode", "offline"),
            group=cfg.get("group") or run_dir.parent.name, job_type=cfg.get("job_type") or info.method,
            tags=list(cfg.get("tags") or []), name=info.run_id, config=config, dir=str(run_dir),
            reinit="finish_previous", settings=wandb.Settings(quiet=True, console="off"),
        )

    def log_edit(self, row: dict, videos: dict[str, Path]) -> None:
        data = {k: v for k, v in row.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"}
        data["ok"] = int(row["status"] == "ok")
        if self.log_videos and "compare" in videos:
            data["compare"] = self.wandb.Video(str(videos["compare"]), caption=row["edit_id"], format="mp4")
        self.run.log(data)

    def finish(self, frame: pd.DataFrame, summary: dict) -> None:
        slim = frame.drop(columns=[c for c in BULKY if c in frame]).astype(object)
        slim = slim.where(slim.notna(), None)
        self.run.log({"results": self.wandb.Table(dataframe=slim)})
        self.run.summary.update({f"edits_{k}": v for k, v in summary["counts"].items()})
        self.run.summary.update({f"{name}/mean": m["mean"] for name, m in summary["metrics"].items()
                                 if m["mean"] is not None and math.isfinite(m["mean"])})

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
