"""The real-scale benchmark section and the one-command GPU check, run at tiny sizes on CPU (the
1.3B-architecture measurements themselves belong to the benchmark, not the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_scale_section_quick_reports_every_key(tmp_path):
    out, results = tmp_path / "perf.json", tmp_path / "RESULTS.md"
    results.write_text("# Performance results\n\nkept text\n")
    subprocess.run([sys.executable, "-m", "benchmarks.perf", "--section", "scale", "--quick", "--json", str(out),
                    "--results", str(results)], cwd=REPO, check=True, capture_output=True, text=True, timeout=600)
    scale = json.loads(out.read_text())["scale"]
    assert scale["params"] > 0 and scale["pipeline_equivalence_max_abs"] <= 1e-4
    assert scale["kv_store_bytes_ratio"] == {"bfloat16": 0.5, "float8_e4m3fn": 0.25}
    assert scale["kv_store_bytes_vs_formula"] == 1.0
    assert scale["memory_estimate_ratio"] > 0 and scale["kvlock_vs_cfg_zero_star"] > 0
    assert scale["kvlock_vs_cfg_zero_star_cpu"] > 0 and "by the process's CPU time per step" in results.read_text()
    assert len(scale["timings"]) == 3 and all(t["s_per_it"]["kvlock"] > 0 for t in scale["timings"].values())
    text = results.read_text()
    assert text.startswith("# Performance results\n\nkept text") and "## Wan2.1-1.3B architecture on CPU" in text
    assert (tmp_path / "scale_cpu.png").stat().st_size > 0
    fg = scale["fg_only"]
    assert fg["speedup"] == scale["fg_only_speedup"] > 0 and len(fg["speedup_per_repeat"]) == 1
    assert 0 < fg["fg_fraction"] < 1 and "fg-only hard lock speed-up" in text
    assert set(scale["kv_dtypes_heldout"]["car-roundabout"]) == {"float32", "bfloat16", "float8_e4m3fn"}


def test_sections_are_replaced_in_place(tmp_path):
    from benchmarks.scale import replace_section

    path = tmp_path / "RESULTS.md"
    path.write_text("head\n<!-- analysis -->\nnotes\n")
    replace_section(path, "<!-- s:b -->\nfirst\n<!-- s:e -->", "<!-- s:b -->", "<!-- s:e -->")
    replace_section(path, "<!-- s:b -->\nsecond\n<!-- s:e -->", "<!-- s:b -->", "<!-- s:e -->")
    text = path.read_text()
    assert text.startswith("head\n<!-- analysis -->\nnotes") and "second" in text and "first" not in text
    assert text.count("<!-- s:b -->") == 1


def test_gpu_check_dry_run_fills_the_gpu_section(tmp_path):
    out, results = tmp_path / "gpu.json", tmp_path / "RESULTS.md"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--methods", "kvlock", "hard_lock",
                    "cfg_zero_star", "--timed-steps", "2", "--json", str(out), "--results", str(results)],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=600, env=env)
    report = json.loads(out.read_text())
    assert report["dry_run"] and set(report["methods"]) == {"kvlock", "hard_lock", "cfg_zero_star"}
    for row in report["methods"].values():
        assert row["status"] == "ok" and row["s_per_it"] > 0 and row["peak_memory_gb"] >= 0
    assert report["methods"]["hard_lock"]["kv_store_gb_50_steps_formula"] > 0
    assert report["methods"]["kvlock"]["kv_store_gb_50_steps_formula"] == 0
    text = results.read_text()
    assert "## GPU check" in text and "7.39" in text and "kvlock ÷ cfg_zero_star" in text


def test_gpu_check_without_cuda_is_a_clear_error():
    if subprocess.run([sys.executable, "-c", "import torch,sys;sys.exit(torch.cuda.is_available())"]).returncode:
        pytest.skip("a GPU is present: the real check would run")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr and "--dry-run" in proc.stderr
