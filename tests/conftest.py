"""Shared fixtures. Sections are appended by area; keep fixtures session-scoped and tiny."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# --- backbone / engine -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_backbone():
    """The embedded default backbone (real WanTransformer3DModel, seeded random weights)."""
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    return build_backbone(OmegaConf.load(REPO / "conf" / "model" / "wan_tiny.yaml"))


@pytest.fixture(scope="session")
def real_clip():
    """17 frames of the DAVIS `tennis` clip from ../shared/data, halved and cropped to 64x112."""
    from kvlock.data.sample import EditSample
    from kvlock.data.video_io import read_frames, read_masks

    root = SHARED_DATA / "videos" / "tennis"
    frames = read_frames(root / "frames")[:17, ::2, ::2]
    mask = read_masks(root / "masks")[:17, ::2, ::2] > 127
    ys, xs = np.nonzero(mask.any(0))
    top = int(np.clip(ys.mean() - 32, 0, frames.shape[1] - 64))
    left = int(np.clip(xs.mean() - 56, 0, frames.shape[2] - 112))
    crop = (slice(None), slice(top, top + 64), slice(left, left + 112))
    return EditSample(
        edit_id="tennis__robot",
        video_id="tennis",
        frames=np.ascontiguousarray(frames[crop]),
        mask=np.ascontiguousarray(mask[crop]),
        source_prompt="a man playing tennis on a court",
        target_prompt="a silver robot playing tennis on a court",
        edit_type="object_replace",
    )


@pytest.fixture(scope="session")
def random_clip():
    """Generated 9-frame 32x32 clip with a moving square mask."""
    from kvlock.data.sample import EditSample

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((9, 32, 32), bool)
    for t in range(9):
        mask[t, 8:20, 4 + t : 16 + t] = True
    return EditSample("rand__edit", "rand", frames, mask, "a red square", "a blue circle", "color_change")


# --- experiment / sweeps / report ------------------------------------------------------------

# A tiny job shared by the sweep tests: 2 synthetic edits of one clip, 4 steps, 9 frames of
# 32x32, weight-free metrics, one torch thread (bit-identical results across launchers).
TINY_RUN = (
    "metrics=fast", "sampler.steps=4", "dataset.num_videos=1", "dataset.edit_types=[color_change,removal]",
    "dataset.num_frames=9", "dataset.height=32", "dataset.width=32", "run.num_threads=1",
)
TINY_EDITS = ["synthetic-s0-0000__color_change", "synthetic-s0-0000__removal"]


def run_module(module: str, *args: str, cwd: Path, timeout: float = 300):
    """`python -m <module> args...` in a subprocess (W&B offline); CompletedProcess, output merged."""
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """One real 2-method multirun (kvlock, hard_lock) with the joblib launcher and W&B offline,
    read by several tests. Attributes: root, dir (sweep dir), cache (source cache dir), args
    (the command line minus hydra.sweep.dir), output."""
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("tiny_sweep")
    args = ["-m", "method=kvlock,hard_lock", "hydra/launcher=joblib", *TINY_RUN,
            f"paths.cache_dir={root / 'cache'}"]
    result = run_module("benchmarks.run", *args, "logger=wandb", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    return SimpleNamespace(root=root, dir=root / "sweep", cache=root / "cache", args=args, output=result.stdout)


# --- metrics ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared CPU, 2 threads contend and run up to 30x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cpu_metrics(cfg) -> list:
    """build_metrics on CPU, so results match the CPU references on any machine."""
    from kvlock.metrics import build_metrics

    return build_metrics({"device": "cpu", **cfg})
