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


def live_tensor_bytes() -> int:
    """Bytes of every tensor storage reachable from Python objects now (each storage once)."""
    import gc

    import torch

    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_kvlock_keeps_only_its_variance_window_across_steps(tiny_backbone, random_clip, one_torch_thread):
    """KV-Lock (noised source, every-step composition): what survives a step is the detector's
    window of W float32 predictions plus two float64 sums of the E foreground elements, nothing
    per step (no trace tensors, no per-t latents or K/V): live tensor bytes stay flat once the
    window is full, and the kept bytes follow W, not the step count."""
    from kvlock.engine.token_mask import tokens_to_latent
    from kvlock.methods import compose_method

    fg = tokens_to_latent(token_mask(random_clip.mask, tiny_backbone.geometry), tiny_backbone.geometry)
    elements = int(fg.sum()) * tiny_backbone.geometry.latent_channels
    for steps, window in ((10, 0.2), (30, 0.2), (30, 2 / 30)):
        cfg = compose_method("kvlock", [f"method.detector.window={window}"], steps=steps)
        w = cfg.detector.window_steps(steps)
        probes, live = {w, (w + steps) // 2, steps - 1}, {}

        def probe(info, probes=probes, live=live):
            if info["step"] in probes:
                live[info["step"]] = live_tensor_bytes()

        out = run_edit(tiny_backbone, random_clip, cfg, seed=0, callback=probe)
        assert out.stats["detector_bytes"] == w * elements * 4 + 2 * elements * 8
        assert out.stats["kv_store_bytes"] == out.stats["retained_bytes"] == 0
        assert all(isinstance(v, (int, float, bool, type(None))) for row in out.trace for v in row.values())
        assert len(set(live.values())) == 1, f"{steps} steps: live tensor bytes by step {live}"
