"""Smoke run of the performance benchmark in quick mode (no timing asserts: speed is measured in
benchmarks/, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_perf_quick_writes_every_documented_key(tmp_path):
    out = tmp_path / "perf.json"
    results = tmp_path / "RESULTS.md"
    subprocess.run([sys.executable, "-m", "benchmarks.perf", "--quick", "--json", str(out),
                    "--results", str(results)], cwd=REPO, check=True, capture_output=True, text=True,
                   timeout=600)
    report = json.loads(out.read_text())
    for key in ("overhead", "fg_only_speedup", "noised_memory_ratio_50_10", "inversion_store_bytes_vs_formula",
                "sweep_cache_speedup", "metrics_fps", "device"):
        assert key in report, key
    assert set(report["fg_only_speedup"]) == {"0.10", "0.25", "0.50"}
    fg_only = report["fg_only"]  # the target row takes its own repeat count; each side's seconds are kept
    assert fg_only["0.25"]["spread"]["n"] == 2 and fg_only["0.10"]["spread"]["n"] == 1
    assert all(row["seconds_full"] > 0 and row["seconds_fg_only"] > 0 for row in fg_only.values())
    assert "| full-token s | fg-only s |" in results.read_text()
    assert {"kvlock", "hard_lock", "full_injection", "fixed_cfg"} <= set(report["overhead"])
    assert all(value > 0 for value in report["overhead"].values())
    assert report["inversion_store_bytes_vs_formula"] == 1.0  # the store's bytes are the formula's
    assert report["gpu"]["available"] is False or "device" in report["gpu"]
    assert "Hook overhead" in results.read_text()
    detector = report["memory"]["noised_detector_bytes"]  # KV-Lock's variance window: W = 2 at 2 and 4 steps
    assert detector["2"] == detector["4"] > 0 and "hallucination detector keeps" in results.read_text()
    sweep = report["sweep"]  # interleaved repeats, each giving one ratio
    assert sweep["spread"]["n"] == 1 and sweep["speedup"] == sweep["spread"]["median"] > 0
    assert "interleaved repeats" in results.read_text()


def test_perf_backbones_writes_a_row_per_backbone(tmp_path):
    results = tmp_path / "RESULTS_backbones.md"
    subprocess.run([sys.executable, "-m", "benchmarks.perf_backbones", "--frames", "5", "--size", "32",
                    "--steps", "2", "--repeats", "1", "--results", str(results)], cwd=REPO, check=True,
                   capture_output=True, text=True, timeout=600)
    rows = [line for line in results.read_text().splitlines() if line.startswith("| ") and "ms |" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["wan_tiny", "cogvideox_tiny", "hunyuan_tiny"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[3:-1]]  # overhead kvlock, hard_lock, fg-only x3
        assert len(cells) == 5 and all(float(c.split()[0]) > 0 for c in cells), row


def test_profile_fg_only_reports_attention_and_its_ceiling(capsys):
    from benchmarks.profile_fg_only import main

    out = main(["--quick"])
    printed = capsys.readouterr().out
    assert out["sdpa_full_ms"] > 0 and out["sdpa_fg_ms"] > 0
    assert 0 < out["attention_share"] < 1 and "attention share of the operator time" in printed
    assert "| aten::" in printed  # the operator table has rows


def test_spread_marks_a_target_only_when_the_median_s_interval_straddles_it():
    from benchmarks.perf import spread

    clear = [3.1, 3.8, 3.9, 3.85, 4.0, 3.7, 3.95, 3.88, 3.75, 3.9, 4.05]  # one repeat below 3.6
    out = spread(clear, "≥ 3.6×")
    assert out["min"] < 3.6 < out["ci_low"] <= out["median"] <= out["ci_high"] <= out["max"]
    assert not out["crosses_target"] and spread(clear, "≥ 3.6×") == out  # seeded: same interval
    assert spread([3.4, 3.5, 3.6, 3.7, 3.8, 3.55, 3.65], "≥ 3.6×")["crosses_target"]
    assert spread([1.2, 1.15, 1.25, 1.3, 1.18], "≤ 1.10")["crosses_target"] is False  # clearly missed
    assert spread([1.05, 1.08, 1.12, 1.14, 1.09, 1.11], "≤ 1.10")["crosses_target"]
