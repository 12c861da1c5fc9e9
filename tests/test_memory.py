"""Resource guard: the memory formula and a clear error before an edit that cannot fit."""

from __future__ import annotations

import pytest

from kvlock.engine.config import EditConfig
from kvlock.engine.editor import run_edit
from kvlock.engine.memory import ResourceError, check_fits, estimate_edit
from kvlock.engine.token_mask import token_mask


def test_kv_estimate_equals_the_measured_store(tiny_backbone, random_clip):
    cfg = EditConfig(steps=3, guidance={"rule": "cfg"})
    out = run_edit(tiny_backbone, random_clip, cfg, seed=0)
    fg_fraction = float(token_mask(random_clip.mask, tiny_backbone.geometry).float().mean())
    est = estimate_edit(tiny_backbone, cfg, 9, 32, 32, fg_fraction=fg_fraction)
    assert est.kv_store == out.stats["kv_store_bytes"]
    assert est.trajectory == out.stats["retained_bytes"] - out.stats["kv_store_bytes"]


def test_noised_source_has_no_kv_store_and_does_not_grow_with_steps(tiny_backbone):
    a = estimate_edit(tiny_backbone, EditConfig(steps=10, source="noised", init="noised", compose="none"), 9, 32, 32)
    b = estimate_edit(tiny_backbone, EditConfig(steps=50, source="noised", init="noised", compose="none"), 9, 32, 32)
    assert a.kv_store == b.kv_store == 0 and a.total == b.total


def test_guard_names_configs_that_would_fit(tiny_backbone):
    cfg = EditConfig(steps=50)
    need = estimate_edit(tiny_backbone, cfg, 65, 64, 64).total
    with pytest.raises(ResourceError) as err:
        check_fits(tiny_backbone, cfg, 65, 64, 64, free=need // 2)
    message = str(err.value)
    assert "65x64x64" in message and "method.kv_store=cpu" in message and "max_frames=" in message
    assert "\n" not in message
    assert check_fits(tiny_backbone, cfg, 65, 64, 64, free=need * 2).total == need
