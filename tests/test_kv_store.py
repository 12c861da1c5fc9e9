"""Reduced-precision K/V stores: exact byte ratios, the estimate equals the store, CPU offload is
exact, and bad dtypes are clear errors."""

from __future__ import annotations

import pytest
import torch

from kvlock.engine.config import EditConfig
from kvlock.engine.editor import run_edit
from kvlock.engine.kv_store import KVStore
from kvlock.engine.memory import estimate_edit
from kvlock.engine.token_mask import token_mask


@pytest.fixture(scope="module")
def edits(tiny_backbone, random_clip):
    out = {}
    for dtype in ("float32", "bfloat16", "float8_e4m3fn"):
        cfg = EditConfig(steps=2, guidance={"rule": "cfg"}, kv_dtype=dtype)
        out[dtype] = (cfg, run_edit(tiny_backbone, random_clip, cfg, seed=0))
    return out


def test_reduced_stores_are_exactly_half_and_quarter_of_float32(edits, tiny_backbone, random_clip):
    full = edits["float32"][1].stats["kv_store_bytes"]
    assert full > 0
    assert edits["bfloat16"][1].stats["kv_store_bytes"] * 2 == full
    assert edits["float8_e4m3fn"][1].stats["kv_store_bytes"] * 4 == full
    fg_fraction = float(token_mask(random_clip.mask, tiny_backbone.geometry).float().mean())
    for cfg, out in edits.values():
        est = estimate_edit(tiny_backbone, cfg, 9, 32, 32, fg_fraction=fg_fraction)
        assert est.kv_store == out.stats["kv_store_bytes"]


def test_reduced_stores_edit_close_to_float32_but_not_equal(edits):
    ref = edits["float32"][1].latents
    errors = {d: float((edits[d][1].latents - ref).abs().max()) for d in ("bfloat16", "float8_e4m3fn")}
    assert 0 < errors["bfloat16"] < errors["float8_e4m3fn"]
    assert torch.isfinite(edits["float8_e4m3fn"][1].latents).all()


def test_cpu_offload_gives_the_same_edit(edits, tiny_backbone, random_clip):
    cfg = EditConfig(steps=2, guidance={"rule": "cfg"}, kv_dtype="bfloat16", kv_store="cpu")
    out = run_edit(tiny_backbone, random_clip, cfg, seed=0)
    torch.testing.assert_close(out.latents, edits["bfloat16"][1].latents, rtol=0, atol=0)


def test_float8_store_saturates_instead_of_nan_and_bad_dtype_is_clear():
    store = KVStore("memory", "float8_e4m3fn")
    big = torch.tensor([[[1e4, -1e4, 1.0]]])
    store.put(0, 0, "cond", big, big)
    k, _ = store.get(0, 0, "cond", "cpu", torch.float32)
    assert k.flatten().tolist() == [448.0, -448.0, 1.0]
    with pytest.raises(ValueError, match="method.kv_dtype='int4'"):
        EditConfig(kv_dtype="int4")
    with pytest.raises(ValueError, match="method.kv_dtype='int4'"):
        KVStore("memory", "int4")
