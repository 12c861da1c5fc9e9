"""A model metric fetches its weights on first use (from a loopback server) and uses the cached
file offline afterwards; a non-Hub URL goes through KVLOCK_WEIGHTS_MIRROR and is checked
against the catalog's digest. (Offline n/c reasons: tests/test_metrics_models.py.)"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from loopback_hub import LoopbackHub, use_as_hub_endpoint

from kvlock.metrics import MetricInputs, build_metrics, evaluate
from kvlock.metrics.amt_s import AMTS
from kvlock.weights import MIRROR_ENV, entry


def _amt_s_checkpoint() -> bytes:
    """A seeded random AMT-S in the trainer's checkpoint format (as amt-s.pth)."""
    torch.manual_seed(5)
    buffer = io.BytesIO()
    torch.save({"epoch": 0, "state_dict": AMTS().state_dict()}, buffer)
    return buffer.getvalue()


@pytest.fixture
def hub(monkeypatch):
    server = LoopbackHub(_amt_s_checkpoint()).start()
    use_as_hub_endpoint(monkeypatch, server)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def clip_128():
    """4 frames of 128x128 (AMT-S needs 128 px), a moving square."""
    frames = np.full((4, 128, 128, 3), 40, np.uint8)
    for t in range(4):
        frames[t, 40:80, 20 + 8 * t : 60 + 8 * t] = 220
    mask = np.zeros((4, 128, 128), bool)
    mask[:, 32:96, 16:112] = True
    return MetricInputs(frames, frames.copy(), mask, "a square", "a circle")


def test_first_use_downloads_the_checkpoint_then_runs_offline(hub, clip_128, tmp_path, monkeypatch):
    cfg = {"names": ["vbench_ms"], "offline": False, "device": "cpu", "weights_dir": str(tmp_path)}
    row = evaluate(clip_128, build_metrics(cfg))
    assert hub.paths == ["/lalala125/AMT/resolve/main/amt-s.pth"]
    assert json.loads(row["metrics_models"]) == {"vbench_ms": "AMT-S"}  # the file, not random
    assert 0 < row["vbench_ms"] <= 1 and row["metrics_random_weights"] is False

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # second use: the cached file, nothing fetched
    again = evaluate(clip_128, build_metrics({**cfg, "offline": True}))
    assert again["vbench_ms"] == row["vbench_ms"] and len(hub.paths) == 1


def test_mirrored_url_with_the_wrong_digest_is_refused_and_removed(hub, clip_128, tmp_path):
    """The aesthetic head lives on GitHub: the mirror serves it at <mirror>/<host>/<path>; the
    loopback bytes are not the real file, so the catalog's sha256 refuses them."""
    cfg = {"names": ["vbench_aq"], "offline": False, "device": "cpu", "weights_dir": str(tmp_path),
           "allow_random_weights": True,  # a random CLIP tower; the head must come from the file
           "options": {"vbench_aq": {"model": "ViT-B-32", "pretrained": None}}}
    row = evaluate(clip_128, build_metrics(cfg))
    item = entry("laion-aesthetic-linear")
    assert hub.paths == ["/" + item.url.split("://", 1)[1]]
    head = json.loads(row["metrics_models"])["vbench_aq"].split(" + ")[1]
    assert head == "LAION aesthetic linear head (random init, seed 0)"  # the file was refused
    assert [p for p in tmp_path.rglob("*.pth")] == []
