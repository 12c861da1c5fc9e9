"""A model metric fetches its weights on first use (from a loopback mirror) and uses the cached
file offline afterwards. (Offline n/c reasons: tests/test_metrics_models.py.)"""

from __future__ import annotations

import http.server
import io
import json
import threading

import numpy as np
import pytest
import torch

from kvlock.metrics import MetricInputs, build_metrics, evaluate
from kvlock.weights import MIRROR_ENV, entry, url_destination


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    mask = np.zeros((3, 64, 64), bool)
    mask[:, 16:48, 16:48] = True
    edited = source.copy()
    edited[mask] = 255 - edited[mask]
    return MetricInputs(source, edited, mask, "a cat", "a dog")


def _head_bytes(width: int) -> bytes:
    torch.manual_seed(3)
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(width, 1).state_dict(), buffer)  # VBench's aesthetic head format
    return buffer.getvalue()


class Mirror(http.server.ThreadingHTTPServer):
    payload = _head_bytes(512)  # the head on ViT-B-32's 512-wide embeddings
    paths: list[str] = []


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):  # the length check after a transfer
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.end_headers()

    def do_GET(self):
        self.server.paths.append(self.path)
        self.do_HEAD()
        self.wfile.write(self.server.payload)


def test_first_use_downloads_through_the_mirror_then_runs_offline(inputs, tmp_path, monkeypatch):
    server = Mirror(("127.0.0.1", 0), MirrorHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cfg = {"names": ["vbench_aq"], "offline": False, "device": "cpu", "seed": 0,
           "weights_dir": str(tmp_path), "allow_random_weights": True,  # the CLIP tower only
           "options": {"vbench_aq": {"model": "ViT-B-32", "pretrained": None}}}
    try:
        row = evaluate(inputs, build_metrics(cfg))
    finally:
        server.shutdown()
    item = entry("laion-aesthetic-linear")
    assert server.paths == ["/" + item.url.split("://", 1)[1]]
    assert url_destination(item, str(tmp_path)).read_bytes() == Mirror.payload
    head = json.loads(row["metrics_models"])["vbench_aq"].split(" + ")[1]
    assert head == "LAION aesthetic linear head"  # the downloaded file, not a random head
    assert np.isfinite(row["vbench_aq"])

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # second use: the cached file, nothing fetched
    again = evaluate(inputs, build_metrics({**cfg, "offline": True}))
    assert again["vbench_aq"] == row["vbench_aq"]
