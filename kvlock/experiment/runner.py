"""One Hydra job: every edit of the dataset with one method, into one run dir (resumable)."""

from __future__ import annotations

import dataclasses
import json
import logging
from itertools import islice
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from kvlock.backbones import build_backbone
from kvlock.data import PrepareConfig, iter_dataset
from kvlock.experiment.atomic import write_json
from kvlock.experiment.edit import EditOptions, EditRunner
from kvlock.experiment.loggers import build_logger
from kvlock.experiment.metadata import RunInfo
from kvlock.experiment.source_cache import DiskSourceCache
from kvlock.experiment.store import ResultsStore
from kvlock.experiment.summary import summarize
from kvlock.methods import build_method
from kvlock.metrics import build_metrics, metric_info

log = logging.getLogger(__name__)

# Column order of results.parquet; metric and engine-stat columns follow.
LEADING = ("run_id", "method", "edit_id", "video_id", "edit_type", "status", "error", "seed", "seconds",
           "peak_mem_mb", "nfe", "config_hash", "git_sha", "versions", "config", "overrides")


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def with_feature_cache(cfg: DictConfig) -> DictConfig:
    """Metrics config whose source-feature disk cache sits beside the source cache (unless set or
    caching is off), so the jobs of a sweep share source CLIP/DINO features and source flow."""
    metrics = cfg.metrics
    if cfg.cache.enabled and not metrics.get("cache_dir"):
        metrics = OmegaConf.merge(metrics, {"cache_dir": str(Path(cfg.cache.dir).parent / "metric_features")})
    return metrics


def run_job(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | tuple = ()) -> dict:
    """Run (or resume) the job `cfg` describes into `run_dir`; returns its summary.

    Edits already done with status ok under the same config hash are skipped. Files: rows/,
    results.parquet, summary.json, traces/, videos/, and whatever the logger adds.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.run.get("num_threads"):
        torch.set_num_threads(int(cfg.run.num_threads))
    info = RunInfo.collect(cfg, run_dir, overrides)
    method = build_method(cfg.method)
    metrics = build_metrics(with_feature_cache(cfg))
    store = ResultsStore(run_dir).open()
    done = store.completed(info.config_hash)
    if done:
        log.info("resuming %s: %d edits already done, skipping them", run_dir, len(done))
    cache = DiskSourceCache(cfg.cache.dir) if cfg.cache.enabled else None
    runner = EditRunner(
        build_backbone=lambda: build_backbone(cfg.model), method=method, metrics=metrics,
        prepare=PrepareConfig.from_mapping(_plain(cfg.dataset.get("prepare"))), run_dir=run_dir,
        seed=info.seed, source_cache=cache,
        options=EditOptions(cfg.run.save_videos, cfg.run.save_comparison, cfg.run.fps,
                            cfg.run.get("memory_guard", True)),
    )
    shared = dataclasses.asdict(info)
    logger = build_logger(_plain(cfg.logger), run_dir, info, json.loads(info.config))
    failed = True
    try:
        items = islice(iter_dataset(cfg.dataset), cfg.run.get("limit"))
        for item in tqdm(items, desc=info.method, unit="edit", disable=None):
            if item.edit_id in done:
                continue
            row, videos = runner(item)
            row = {**shared, **row}
            row = {**{k: row.get(k) for k in LEADING}, **row}
            store.add(row)
            logger.log_edit(row, videos)
        failed = False
    finally:
        frame = store.frame()
        summary = summarize(frame, info, metric_info(metrics))
        write_json(run_dir / "summary.json", summary)
        logger.finish(frame, summary)
        logger.close(failed)
    counts = summary["counts"]
    cached = f"; source cache {cache.hits} hits, {cache.misses} misses" if cache else ""
    log.info("%s: %d ok, %d failed -> %s%s", info.method, counts["ok"], counts["failed"], run_dir, cached)
    return summary
