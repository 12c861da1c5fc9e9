"""Real Hydra multiruns in subprocesses: joblib and submitit_local launchers, W&B offline files,
kill + resume, the shared source cache, and the debug preset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import TINY_EDITS, TINY_RUN, run_module

pytestmark = pytest.mark.slow

SCHEMA = [
    "run_id", "method", "edit_id", "video_id", "edit_type", "status", "error", "seed", "seconds",
    "peak_mem_mb", "nfe", "config_hash", "git_sha", "versions", "config", "kv_store_bytes",
    "source_cache_hit", "guidance_rule", "omega_rule", "inversion_nfe", "metrics_not_computed",
]
FAST_METRICS = ["bg_psnr", "bg_psnr_bgonly", "bg_mse", "bg_ssim", "flicker", "warp_error", "fg_psnr_gt",
                "oracle_edit_acc"]


def jobs(sweep_dir) -> dict[str, pd.DataFrame]:
    """{job subdir name: its results.parquet}."""
    return {p.parent.name: pd.read_parquet(p) for p in sorted(sweep_dir.glob("*/results.parquet"))}


def assert_wandb_run(job_dir, videos: int) -> None:
    runs = list((job_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    assert list(runs[0].glob("run-*.wandb"))
    assert len(list(runs[0].glob("files/media/videos/*.mp4"))) == videos
    assert list(runs[0].glob("files/media/table/results_*.table.json"))


def test_joblib_sweep_writes_results_wandb_and_report(tiny_sweep):
    results = jobs(tiny_sweep.dir)
    assert list(results) == ["0_kvlock", "1_hard_lock"]
    for name, frame in results.items():
        job_dir = tiny_sweep.dir / name
        method = name.split("_", 1)[1]
        assert list(frame.columns[:15]) == SCHEMA[:15] and set(SCHEMA) <= set(frame.columns)
        assert sorted(frame.edit_id) == TINY_EDITS and (frame.status == "ok").all()
        assert set(frame.method) == {method} and set(frame.run_id) == {f"sweep/{name}"}
        assert (frame.nfe > 0).all() and (frame.seconds > 0).all() and frame.bg_psnr.notna().all()
        first = frame.set_index("edit_id").loc[TINY_EDITS[0]]
        assert not first.source_cache_hit  # the first sweep computes its first inversion
        config = json.loads(frame.config[0])
        assert config["sampler"]["steps"] == 4 and config["method"]["name"] == method
        assert set(json.loads(frame.versions[0])) == {"torch", "diffusers", "transformers", "torchmetrics", "kvlock"}
        for edit in TINY_EDITS:
            assert (job_dir / "rows" / f"{edit}.json").is_file()
            assert len(json.loads((job_dir / "traces" / f"{edit}.json").read_text())) == 4
            for video in (f"{edit}.mp4", f"{edit}_compare.mp4"):
                assert (job_dir / "videos" / video).stat().st_size > 0
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["counts"] == {"ok": 2, "failed": 0, "total": 2}
        assert summary["metrics"]["bg_psnr"]["mean"] == pytest.approx(frame.bg_psnr.mean())
        assert set(summary["metric_info"]) == set(FAST_METRICS)
        assert_wandb_run(job_dir, videos=2)
    assert (results["1_hard_lock"].kv_store_bytes > 0).all() and (results["0_kvlock"].kv_store_bytes == 0).all()
    assert results["1_hard_lock"].set_index("edit_id").inversion_nfe[TINY_EDITS[0]] > 0
    report = (tiny_sweep.dir / "report.md").read_text()
    assert "| KV-Lock " in report and "| Hard lock (KV-Edit) " in report
    assert "Report of" in tiny_sweep.output and "| KV-Lock " in tiny_sweep.output


def test_killed_sweep_resumes_to_the_same_results(tiny_sweep, tmp_path):
    sweep = tmp_path / "sweep"  # the basic launcher: both jobs in one process, one after the other
    args = [a for a in tiny_sweep.args if not a.startswith("hydra/launcher")]
    args += ["logger=csv", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while not list(sweep.glob("*/rows/*.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {p: p.read_bytes() for p in sweep.glob("*/rows/*.json")}
    assert 0 < len(before) < 4, "the kill should land mid-sweep"

    result = run_module("benchmarks.run", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "already done, skipping them" in result.stdout
    assert all(path.read_bytes() == data for path, data in before.items())  # done rows not redone
    resumed, reference = jobs(sweep), jobs(tiny_sweep.dir)
    assert list(resumed) == list(reference)
    for name, frame in resumed.items():
        assert frame.edit_id.is_unique and sorted(frame.edit_id) == TINY_EDITS
        assert len(list((sweep / name / "rows").glob("*.json"))) == 2
        columns = ["edit_id", "status", *FAST_METRICS]
        pd.testing.assert_frame_equal(frame[columns], reference[name][columns], check_exact=True)
        assert len(pd.read_csv(sweep / name / "metrics.csv")) == 2


def test_submitit_local_sweep_reuses_the_source_cache(tiny_sweep, tmp_path):
    sweep = tmp_path / "sweep"
    # two hard-lock variants whose inversion (same steps, prompts, mask, captured branches) is cached
    result = run_module("benchmarks.run", "-m", "method=hard_lock", "method.init=inversion,reinit",
                        "hydra/launcher=submitit_local",
                        *TINY_RUN, f"paths.cache_dir={tiny_sweep.cache}", "logger=wandb",
                        f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    results = jobs(sweep)
    assert list(results) == ["0_hard_lock", "1_hard_lock"]
    for name, frame in results.items():
        assert (frame.status == "ok").all() and sorted(frame.edit_id) == TINY_EDITS
        assert frame.source_cache_hit.all() and (frame.inversion_nfe == 0).all()
        assert json.loads((sweep / name / "summary.json").read_text())["source_cache_hits"] == 2
        assert_wandb_run(sweep / name, videos=2)
    assert list(sweep.glob(".submitit/*"))
    # the cached inversion reproduces the computed one bit for bit
    columns = ["edit_id", *FAST_METRICS]
    pd.testing.assert_frame_equal(results["0_hard_lock"][columns], jobs(tiny_sweep.dir)["1_hard_lock"][columns],
                                  check_exact=True)
    report = (sweep / "report.md").read_text()
    assert "| Hard lock (KV-Edit) [init=inversion] " in report and "| Hard lock (KV-Edit) [init=reinit] " in report


def test_debug_preset_runs_one_quick_edit(tmp_path):
    run_dir = tmp_path / "run"
    result = run_module("benchmarks.run", "debug=default", f"hydra.run.dir={run_dir}",
                        f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 1 and frame.status[0] == "ok" and frame.steps[0] == 2
    assert set(FAST_METRICS) <= set(frame.columns) and "clip_text" not in frame
    assert not (run_dir / "metrics.csv").exists() and not (run_dir / "wandb").exists()  # logger=none
    assert list((run_dir / "videos").glob("*.mp4")) and not list((run_dir / "videos").glob("*_compare.mp4"))
