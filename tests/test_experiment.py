"""The experiment app in-process: config composition, the job runner (resume, corrupt results,
failed items), the results store and the disk source cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, TINY_EDITS, TINY_RUN
from hydra import compose, initialize_config_dir

from kvlock.engine.editor import NonFiniteError
from kvlock.experiment.runner import run_job
from kvlock.experiment.source_cache import DiskSourceCache
from kvlock.experiment.store import ResultsStore, safe_name
from kvlock.methods import available_methods, build_method

CONF = REPO / "conf"
pytestmark = pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema")


def compose_config(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


# --- config tree -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes_into_valid_jobs(name):
    cfg = compose_config(f"experiment={name}", hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.name == name
    methods = str(cfg.hydra.sweeper.params.method).split(",")
    assert methods and set(methods) <= set(available_methods())
    for method in methods:
        job = compose_config(f"experiment={name}", f"method={method}")
        config = build_method(job.method)
        assert config.name == method and config.steps == job.sampler.steps
    if name == "kvlock_ablation":
        assert {m for m in methods if m.startswith("kvlock_abl_")} == {
            m for m in available_methods() if m.startswith("kvlock_abl_")}


def test_root_defaults_and_presets_compose():
    cfg = compose_config(hydra=True)
    assert (cfg.model.name, cfg.method.name, cfg.dataset.name, cfg.logger.kind) == ("wan_tiny", "kvlock", "synthetic", "csv")
    assert (cfg.sampler.steps, cfg.sampler.shift, cfg.sampler.guidance_scale) == (10, 3.0, 5.0)
    assert cfg.cache.enabled and cfg.cache.dir == cfg.paths.cache_dir and not cfg.hydra.job.chdir
    assert str(cfg.hydra.sweep.dir).startswith("./multirun/") and str(cfg.hydra.run.dir).startswith("./outputs/")
    debug = compose_config("debug=default")
    assert (debug.sampler.steps, debug.run.limit, debug.logger.kind) == (2, 1, "none")
    assert "clip_text" not in debug.metrics.names
    wandb = compose_config("logger=wandb").logger
    assert wandb.mode == "offline" and {"project", "entity", "group", "job_type", "tags"} <= set(wandb)
    hp = compose_config("hparams_search=kvlock_tau", hydra=True)
    assert set(hp.hydra.sweeper.params) == {"method.detector.tau", "method.guidance.omega_rule"}
    slurm = compose_config("local=example_slurm", hydra=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    for key in ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "account", "qos",
                "array_parallelism"):
        assert key in slurm
    assert compose_config("hydra/launcher=joblib", hydra=True).hydra.launcher.n_jobs == 2
    assert compose_config("hydra/launcher=submitit_local", hydra=True).hydra.launcher._target_.endswith("LocalLauncher")


# --- the job runner --------------------------------------------------------------------------


def tiny_job(tmp_path: Path, *overrides: str):
    """TINY_RUN at 2 steps without videos; a `dataset=` override drops the synthetic settings."""
    base = [o for o in TINY_RUN if not (o.startswith("dataset.") and any(x.startswith("dataset=") for x in overrides))]
    return compose_config(*base, "sampler.steps=2", f"paths.cache_dir={tmp_path / 'cache'}",
                          "run.save_videos=false", "run.save_comparison=false", *overrides)


def test_resume_rebuilds_a_corrupt_results_file_without_duplicates(tmp_path, caplog):
    run_dir = tmp_path / "run"
    cfg = tiny_job(tmp_path, "method=hard_lock")
    first = run_job(cfg, run_dir)
    assert first["counts"] == {"ok": 2, "failed": 0, "total": 2}
    reference = pd.read_parquet(run_dir / "results.parquet")
    rows = sorted((run_dir / "rows").glob("*.json"))
    kept = rows[0].read_bytes()
    rows[1].unlink()  # as if killed before this edit finished
    data = (run_dir / "results.parquet").read_bytes()
    (run_dir / "results.parquet").write_bytes(data[: len(data) // 2])  # truncated by a kill

    with caplog.at_level(logging.INFO, logger="kvlock"):
        second = run_job(cfg, run_dir)
    assert "results.parquet is unreadable" in caplog.text and "rebuilt from 1 row files" in caplog.text
    assert "1 edits already done" in caplog.text
    assert rows[0].read_bytes() == kept and rows[1].is_file()
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert frame.edit_id.is_unique and len(frame) == 2 and second["counts"]["ok"] == 2
    metrics = ["edit_id", "bg_psnr", "bg_mse", "bg_ssim", "fg_psnr_gt"]
    pd.testing.assert_frame_equal(frame[metrics], reference[metrics], check_exact=True)
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 2 and "config" not in pd.read_csv(run_dir / "metrics.csv")

    changed = run_job(tiny_job(tmp_path, "method=hard_lock", "method.attn_scale=0.5"), run_dir)
    assert changed["counts"]["total"] == 2  # another config in the same dir: redone and replaced
    assert pd.read_parquet(run_dir / "results.parquet").config_hash.nunique() == 1


def write_clip(folder: Path, frames: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


def test_bad_items_become_failed_rows_and_the_loop_goes_on(tmp_path, caplog):
    rng = np.random.default_rng(0)
    write_clip(tmp_path / "v", rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    mask = np.zeros((5, 32, 32, 3), np.uint8)
    mask[:, 8:20, 8:20] = 255
    write_clip(tmp_path / "m", mask)
    write_clip(tmp_path / "short", rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    write_clip(tmp_path / "short_m", mask[:2])
    edit = {"source_prompt": "a square", "target_prompt": "a circle", "edit_type": "object_replace"}
    lines = [
        {"id": "good", "video": "v", "mask": "m", **edit},
        {"id": "no_mask", "video": "v", "mask": "missing", **edit},
        {"id": "too_short", "video": "short", "mask": "short_m", **edit},
    ]
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    data = ["dataset=manifest", f"dataset.path={manifest}", "dataset.prepare.height=32",
            "dataset.prepare.width=32", "dataset.prepare.max_frames=5"]
    with caplog.at_level(logging.DEBUG, logger="kvlock"):
        summary = run_job(tiny_job(tmp_path, *data), tmp_path / "run")
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet").set_index("edit_id")
    assert summary["counts"] == {"ok": 1, "failed": 2, "total": 3}
    assert summary["failures"] == frame.error[frame.status == "failed"].to_dict()
    assert frame.status.to_dict() == {"good": "ok", "no_mask": "failed", "too_short": "failed"}
    assert "missing: not found" in frame.error["no_mask"] and "too short" in frame.error["too_short"]
    assert all("\n" not in e for e in frame.error.dropna())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(r.getMessage().startswith("edit too_short failed: ") for r in warnings)
    assert not any(r.exc_info for r in warnings)  # one line at the default level ...
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)  # ... traceback at DEBUG

    nan = ("sampler.guidance_scale=nan", "run.limit=1")
    failed = run_job(tiny_job(tmp_path, *nan), tmp_path / "nan")
    assert failed["counts"]["failed"] == 1
    assert pd.read_parquet(tmp_path / "nan" / "results.parquet").error[0].startswith("NonFiniteError: non-finite")
    with pytest.raises(NonFiniteError):
        run_job(tiny_job(tmp_path, *nan, "method.nonfinite=stop"), tmp_path / "stop")
    assert json.loads((tmp_path / "stop" / "summary.json").read_text())["counts"]["total"] == 0


def wandb_records(path: Path):
    """The protobuf records of an offline W&B run file (run-*.wandb): a 7-byte header, then
    LevelDB-log blocks of 32 KiB whose chunks (crc32, length, type) join into records."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, buf = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a record is complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_wandb_run_logs_each_edits_trace_as_step_indexed_series(tmp_path):
    run_dir = tmp_path / "run"
    run_job(tiny_job(tmp_path, "method=kvlock", "logger=wandb", "logger.log_videos=false"), run_dir)
    [run_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(wandb_records(run_file))
    metrics = {(r.metric.name or r.metric.glob_name): r.metric.step_metric
               for r in records if r.WhichOneof("record_type") == "metric"}
    assert metrics["trace/*"] == "trace/step"
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    for edit in TINY_EDITS:
        trace = json.loads((run_dir / "traces" / f"{edit}.json").read_text())
        series = [h for h in history if f"trace/{edit}/t" in h]
        assert [h["trace/step"] for h in series] == [s["step"] for s in trace]  # 2 steps
        for key in ("t", "sigma2", "alpha_mean", "omega", "s_star", "active"):  # None: not logged
            logged = [h.get(f"trace/{edit}/{key}") for h in series]
            expected = [None if s.get(key) is None else float(s[key]) for s in trace]
            assert [v is None for v in logged] == [v is None for v in expected], key
            values = [v for v in expected if v is not None]
            assert [v for v in logged if v is not None] == pytest.approx(values), key
    assert any("bg_psnr" in h and "trace/step" not in h for h in history)  # per-edit metrics
    files = run_file.parent / "files" / "media"
    assert list(files.glob("table/traces_*.table.json"))
    assert list(files.glob("images/trace_summary_*.png"))


# --- store and cache -------------------------------------------------------------------------


def test_store_keys_rows_by_edit_id(tmp_path):
    assert safe_name("blackswan__white-duck") == "blackswan__white-duck"
    assert safe_name("a/b") != safe_name("a_b") and "/" not in safe_name("a/b")
    store = ResultsStore(tmp_path).open()
    store.add({"edit_id": "a/b", "status": "failed", "error": "x", "config_hash": "h", "value": None})
    store.add({"edit_id": "a/b", "status": "ok", "error": None, "config_hash": "h", "value": 1.5})
    store.add({"edit_id": "c", "status": "ok", "error": None, "config_hash": "other", "value": float("nan")})
    assert store.completed("h") == {"a/b"}
    reopened = ResultsStore(tmp_path).open()
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert list(frame.edit_id) == ["a/b", "c"] and frame.value.dtype == float and np.isnan(frame.value[1])
    assert reopened.rows == store.rows | {"c": {**store.rows["c"], "value": None}}


def test_disk_source_cache_round_trip_and_counters(tmp_path):
    cache = DiskSourceCache(tmp_path / "c")
    tensors = {"traj.0": torch.randn(1, 4, 2, 3, 3), "kv.0.k": torch.randn(2, 5).t()}
    assert cache.load("inversion-abc") is None
    cache.save("inversion-abc", tensors)
    loaded = cache.load("inversion-abc")
    assert set(loaded) == set(tensors) and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert (cache.hits, cache.misses) == (1, 1) and not list((tmp_path / "c").glob(".tmp-*"))
    (tmp_path / "c" / "inversion-abc.safetensors").write_bytes(b"garbage")
    assert cache.load("inversion-abc") is None and cache.misses == 2
    with pytest.raises(ValueError, match="bad source cache key"):
        cache.save("../escape", tensors)
