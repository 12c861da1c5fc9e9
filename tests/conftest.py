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
