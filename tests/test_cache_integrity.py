"""On-disk caches carry a checksum of their tensors: an entry corrupted in place is detected,
recomputed and replaced, whether the corruption is non-finite or finite."""

from __future__ import annotations

import json
import logging
import struct

import pytest
import torch

from kvlock.engine.config import EditConfig
from kvlock.engine.editor import run_edit
from kvlock.experiment.source_cache import DiskSourceCache
from kvlock.metrics.cache import FeatureCache

CORRUPTIONS = {
    "non_finite": b"\xff" * 4096,  # float32 0xFFFFFFFF is NaN
    "finite": struct.pack("<1024f", *([0.5] * 1024)),  # plausible values, silently wrong numbers
}


def overwrite_inside_tensor(path, tensor_name: str, payload: bytes) -> None:
    """Overwrite `payload` bytes inside one tensor's data in a safetensors file (header intact)."""
    data = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + header_len])
    begin, end = header[tensor_name]["data_offsets"]
    assert end - begin >= len(payload) + 64, "tensor too small for the corruption"
    at = 8 + header_len + begin + 32
    data[at : at + len(payload)] = payload
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("kv_dtype", ["float32", "float8_e4m3fn"])
def test_corrupted_inversion_entry_is_recomputed_and_replaced(tiny_backbone, random_clip, tmp_path,
                                                               caplog, kind, kv_dtype):
    cfg = EditConfig(steps=2, guidance={"rule": "cfg"}, kv_dtype=kv_dtype)
    cache = DiskSourceCache(tmp_path)
    first = run_edit(tiny_backbone, random_clip, cfg, seed=0, source_cache=cache)
    (entry,) = tmp_path.glob("*.safetensors")
    name = "traj.1" if kind == "non_finite" else "kv.1.0.cond.k"
    size = len(CORRUPTIONS[kind]) if kv_dtype == "float32" or name.startswith("traj") else 256
    overwrite_inside_tensor(entry, name, CORRUPTIONS[kind][:size])
    with caplog.at_level(logging.WARNING):
        second = run_edit(tiny_backbone, random_clip, cfg, seed=0, source_cache=cache)
    assert "fails its checksum" in caplog.text
    assert not second.stats["source_cache_hit"]
    torch.testing.assert_close(second.latents, first.latents, rtol=0, atol=0)
    third = run_edit(tiny_backbone, random_clip, cfg, seed=0, source_cache=cache)  # replaced entry
    assert third.stats["source_cache_hit"] and cache.hits == 1
    torch.testing.assert_close(third.latents, first.latents, rtol=0, atol=0)


def test_entry_without_checksum_is_recomputed(tmp_path, caplog):
    from safetensors.torch import save_file

    cache = DiskSourceCache(tmp_path)
    save_file({"traj.0": torch.zeros(3)}, str(cache.path("inversion-old")))
    with caplog.at_level(logging.WARNING):
        assert cache.load("inversion-old") is None
    assert "has no checksum" in caplog.text and cache.misses == 1


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupted_metric_feature_file_is_recomputed_and_replaced(tmp_path, caplog, kind):
    features = {"flow": torch.arange(4096, dtype=torch.float32).reshape(64, 64)}
    FeatureCache(disk_dir=tmp_path).get_or_compute("clip-a", lambda: features)
    (path,) = tmp_path.glob("*.pt")
    data = bytearray(path.read_bytes())
    at = data.find(features["flow"][8:].numpy().tobytes()[:64])  # inside the tensor's storage
    assert at > 0
    payload = CORRUPTIONS[kind][:1024]
    data[at : at + len(payload)] = payload
    path.write_bytes(bytes(data))
    fresh = FeatureCache(disk_dir=tmp_path)
    calls = []
    with caplog.at_level(logging.WARNING):
        got = fresh.get_or_compute("clip-a", lambda: calls.append(1) or features)
    assert calls == [1] and "fails its checksum" in caplog.text and fresh.misses == 1
    assert torch.equal(got["flow"], features["flow"])
    again = FeatureCache(disk_dir=tmp_path).get_or_compute("clip-a", lambda: pytest.fail("not replaced"))
    assert torch.equal(again["flow"], features["flow"])
