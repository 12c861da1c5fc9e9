"""kvlock.weights: the real download paths (huggingface_hub, torch.hub) against a loopback HTTP
server serving seeded random weights in the real file formats."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from loopback_hub import LoopbackHub, use_as_hub_endpoint

from kvlock.weights import (
    ChecksumMismatch,
    IncompleteDownload,
    ModelFile,
    ensure,
    entry,
    fetch,
    local_path,
)
from kvlock.weights.catalog import CATALOG, entries


def _state_dict_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(768, 1).state_dict(), buffer)  # the aesthetic head's format
    return buffer.getvalue()


PAYLOAD = _state_dict_bytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(scope="module")
def server():
    srv = LoopbackHub(PAYLOAD).start()
    yield srv
    srv.shutdown()


@pytest.fixture
def endpoint(server, monkeypatch):
    server.cut = False
    use_as_hub_endpoint(monkeypatch, server)
    return server.url


HF_ITEM = ModelFile("test-hf", ("vbench_aq",), "test head", "hf", "head.pth", repo="org/heads")


def url_item(endpoint: str, sha: str | None) -> ModelFile:
    return ModelFile("test-url", ("vbench_aq",), "test head", "url", "head-x.pth",
                     url=f"{endpoint}/org/heads/resolve/main/head.pth", sha256=sha)


def test_hf_download_verified_and_loadable(endpoint, tmp_path):
    path = fetch(HF_ITEM, str(tmp_path), progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    assert local_path(HF_ITEM, str(tmp_path)) == path
    state = torch.load(path, weights_only=True)
    assert state["weight"].shape == (1, 768)


def test_hf_checksum_mismatch_leaves_nothing(endpoint, tmp_path):
    bad = replace(HF_ITEM, sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="expected 0000"):
        fetch(bad, str(tmp_path), progress=False)
    assert local_path(bad, str(tmp_path)) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 1000]


def test_url_download_and_checksum(endpoint, tmp_path):
    path = fetch(url_item(endpoint, SHA[:8]), str(tmp_path), progress=False)
    assert path == tmp_path / "checkpoints" / "head-x.pth" and path.read_bytes() == PAYLOAD
    bad = url_item(endpoint, "deadbeef")
    path.unlink()
    with pytest.raises(ChecksumMismatch):
        fetch(bad, str(tmp_path), progress=False)
    assert list(tmp_path.rglob("*.pth")) == []


@pytest.mark.parametrize("sha", [SHA, None])
def test_interrupted_transfer_leaves_nothing_then_retries(server, endpoint, tmp_path, sha):
    item = url_item(endpoint, sha)
    server.cut = True
    cut = f"got {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes; the file was deleted"
    with pytest.raises(IncompleteDownload, match=cut):
        fetch(item, str(tmp_path), progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no partial file to load
    assert fetch(item, str(tmp_path), progress=False).read_bytes() == PAYLOAD  # clean retry


def test_interrupted_hub_download_retried(server, endpoint, tmp_path):
    server.cut, before = True, server.gets
    path = fetch(HF_ITEM, str(tmp_path), progress=False)  # huggingface_hub retries by itself
    assert server.gets - before == 2  # the cut transfer, then the completing one
    assert path.read_bytes() == PAYLOAD


def test_offline_fetches_nothing(server, endpoint, tmp_path, monkeypatch):
    before = server.gets
    assert ensure(HF_ITEM, str(tmp_path), offline=True) is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ensure(HF_ITEM, str(tmp_path), offline=False) is None
    assert server.gets == before and list(tmp_path.rglob("*.pth")) == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert ensure(HF_ITEM, str(tmp_path), offline=False).read_bytes() == PAYLOAD


def test_status_names_every_metric_model(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "kvlock.weights", "--weights-dir", str(tmp_path), "status"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    for metric in ("vbench_sc", "vbench_bc", "vbench_ms", "vbench_aq", "vbench_iq", "hpsv2",
                   "laion_aes", "image_reward", "clip_text", "bg_lpips"):
        assert metric in out
    assert out.count("missing") == len(CATALOG)
    with pytest.raises(ValueError, match="Available: clip-vit-l-14"):
        entry("nope")
    assert [i.name for i in entries(["image_reward", "amt-s"])] == [
        "image-reward", "image-reward-config", "amt-s"]


def test_cli_fetch_by_metric_refuses_a_corrupt_mirror_file(endpoint, tmp_path):
    """`fetch vbench_iq` resolves to musiq-spaq (a Hub-hosted URL, so HF_ENDPOINT mirrors it);
    the loopback file is not the real checkpoint, so its sha256 prefix fails and nothing stays."""
    result = subprocess.run(
        [sys.executable, "-m", "kvlock.weights", "--weights-dir", str(tmp_path), "fetch",
         "vbench_iq"], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "musiq-spaq: FAILED: ChecksumMismatch" in result.stderr and "expected 358bb6af" in result.stderr
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
