"""`python -m benchmarks.evaluate`: a real subprocess on files in tmp_path, and its error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.evaluate import main
from kvlock.data.video_io import read_frames, write_mp4
from kvlock.metrics import MetricInputs, build_metrics, evaluate

REPO = Path(__file__).resolve().parents[1]


def cpu_metrics(cfg) -> list:
    """build_metrics on CPU, so results match the CPU references on any machine."""
    return build_metrics({"device": "cpu", **cfg})


def write_frames(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.png")
    return folder


@pytest.fixture()
def clip_files(tmp_path) -> dict[str, Path]:
    """Source frames, an edited mp4 and 0/255 mask PNGs of a 6-frame 48x64 clip."""
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    mask = np.zeros((6, 48, 64), np.uint8)
    mask[:, 10:30, 16:40] = 255
    edited = source.copy()
    edited[mask > 0] = 30
    return {
        "source": write_frames(tmp_path / "source", source),
        "edited": write_mp4(tmp_path / "edited.mp4", edited),
        "mask": write_frames(tmp_path / "masks", mask),
    }


def args(files: dict[str, Path], *extra: str) -> list[str]:
    paths = [f"--{name}={path}" for name, path in files.items()]
    return [
        *paths,
        "--source-prompt",
        "a noisy field",
        "--target-prompt",
        "a grey box on a noisy field",
        *extra,
    ]


def test_subprocess_prints_json_with_the_metric_columns(clip_files, tmp_path):
    no_cached_weights = {"TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_OFFLINE": "1"}
    env = {**os.environ, **no_cached_weights, "OMP_NUM_THREADS": "1"}  # 1 thread: shared CPU
    metrics = "bg_psnr,bg_ssim,bg_lpips,flicker,warp_error"
    command = [
        sys.executable,
        "-m",
        "benchmarks.evaluate",
        *args(clip_files, "--metrics", metrics, "--allow-random-weights", "--json"),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert set(metrics.split(",")) | {
        "bg_psnr_capped",
        "metrics_not_computed",
        "metrics_random_weights",
        "metrics_models",
    } == set(row)
    assert row["metrics_random_weights"] is True and row["metrics_not_computed"] == {}
    assert row["metrics_models"] == {"bg_lpips": "LPIPS squeeze (random init, seed 0)"}
    source, edited = read_frames(clip_files["source"]), read_frames(clip_files["edited"])
    mask = np.stack([np.asarray(Image.open(p)) > 127 for p in sorted(clip_files["mask"].iterdir())])
    expected = evaluate(
        MetricInputs(source, edited, mask), cpu_metrics({"names": ["bg_psnr", "flicker"]})
    )
    assert row["bg_psnr"] == pytest.approx(expected["bg_psnr"], rel=1e-6)
    assert row["bg_psnr_capped"] == 0  # the mp4 is lossy
    assert row["flicker"] == pytest.approx(expected["flicker"], rel=1e-6)


def test_table_names_the_variants(clip_files, capsys):
    assert (
        main(args(clip_files, "--metrics", "bg_psnr,warp_error,fg_psnr_gt", "--stride", "2")) == 0
    )
    out = capsys.readouterr().out
    assert "WarpErr (DIS)" in out and "BG PSNR (PIE-Bench)" in out
    assert "not computed: no ground-truth target clip" in out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"source": "missing"}, "missing: not found"),
        ({"metrics": "bg_psnr,nope"}, "Unknown metric 'nope'. Available: "),
        ({"stride": "0"}, "frame_stride must be >= 1, got 0"),
    ],
)
def test_bad_inputs_end_with_one_line(clip_files, tmp_path, capsys, change, message):
    files = dict(clip_files)
    extra = []
    for key, value in change.items():
        if key in files:
            files[key] = tmp_path / value
        else:
            extra += [f"--{key}", value]
    assert main(args(files, *extra)) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and message in err
        and err.count("\n") == 1
        and "Traceback" not in err
    )
