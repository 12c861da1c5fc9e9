"""Engine mechanics: exact background under hard locking, reference equivalence, fg-only fast path,
inversion accuracy, KV-store accounting, token masks, controller fusion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kvlock.backbones.geometry import LatentGeometry
from kvlock.backbones.prediction import T_MIN
from kvlock.backbones.wan_forward import wan_forward
from kvlock.engine.config import EditConfig
from kvlock.engine.controller import KVController, Row
from kvlock.engine.editor import NonFiniteError, run_edit
from kvlock.engine.kv_store import KVStore
from kvlock.engine.timesteps import flow_timesteps
from kvlock.engine.token_mask import token_mask, tokens_to_pixels

NO_CFG = {"rule": "none"}


def background_pixels(sample, backbone, dilation=0):
    """(T, H, W) bool: pixels covered only by background tokens."""
    fg = token_mask(sample.mask, backbone.geometry, dilation)
    return ~tokens_to_pixels(fg, backbone.geometry, sample.num_frames)


@pytest.mark.parametrize("clip", ["real_clip", "random_clip"])
def test_hard_lock_keeps_background_pixels_exact(clip, tiny_backbone, request):
    sample = request.getfixturevalue(clip)
    out = run_edit(tiny_backbone, sample, EditConfig(steps=4, alpha=1.0, compose="every_step"), seed=0)
    bg = background_pixels(sample, tiny_backbone)
    assert bg.any() and (~bg).any()
    diff = np.abs(out.frames.astype(int) - sample.frames.astype(int))
    assert diff[bg].max() == 0
    assert diff[~bg].max() > 0  # the foreground was regenerated


def test_no_kv_control_equals_stock_diffusers_forward_in_the_same_euler_loop(tiny_backbone, random_clip):
    steps, shift = 5, 3.0
    cfg = EditConfig(steps=steps, shift=shift, source="noised", init="noised", bg_kv="none", compose="none",
                     guidance=NO_CFG)
    out = run_edit(tiny_backbone, random_clip, cfg, seed=3)

    z0 = tiny_backbone.encode_video(random_clip.frames)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(3))
    ctx = tiny_backbone.encode_prompt([random_clip.target_prompt])
    ts = flow_timesteps(steps, shift)
    x = noise.clone()
    for i in range(steps):
        v = tiny_backbone.transformer(x, timestep=ts[i:i + 1] * 1000, encoder_hidden_states=ctx,
                                      return_dict=False)[0]
        x = x + (ts[i + 1] - ts[i]) * v
    torch.testing.assert_close(out.latents, x, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def sample_backbone():
    """wan_tiny with `prediction: sample`: the transformer's output read as x̂0 (JiT)."""
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "wan_tiny.yaml")
    cfg.prediction = "sample"
    return build_backbone(cfg)


def test_sample_prediction_becomes_the_velocity_it_implies(sample_backbone, random_clip):
    z = sample_backbone.encode_video(random_clip.frames)
    z = torch.cat([z, z + 0.1])
    ctx = sample_backbone.encode_prompt(["a red square", "a blue circle"])
    t = torch.tensor([0.5, 0.0])
    raw = sample_backbone.transformer(z, timestep=t * 1000, encoder_hidden_states=ctx, return_dict=False)[0]
    expected = (z - raw) / torch.tensor([0.5, T_MIN]).view(-1, 1, 1, 1, 1)  # t clamped: finite at 0
    torch.testing.assert_close(sample_backbone.velocity(z, t, ctx), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wan_forward(sample_backbone.transformer, z, t, ctx, prediction="sample"),
                               expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="Unknown prediction 'eps'"):
        wan_forward(sample_backbone.transformer, z, t, ctx, prediction="eps")


@pytest.mark.parametrize("backbone", ["tiny_backbone", "sample_backbone"])
def test_fg_only_equals_full_token_hard_lock_with_fewer_tokens(backbone, real_clip, request):
    tiny_backbone = request.getfixturevalue(backbone)
    full = EditConfig(steps=4, guidance=NO_CFG)
    fast = EditConfig(steps=4, guidance=NO_CFG, fg_only=True)
    seen = []
    out_full = run_edit(tiny_backbone, real_clip, full, seed=0)
    out_fast = run_edit(tiny_backbone, real_clip, fast, seed=0,
                        callback=lambda info: seen.append(info["step"]))
    torch.testing.assert_close(out_fast.latents, out_full.latents, atol=1e-4, rtol=0)
    assert out_fast.stats["fg_tokens"] < out_fast.stats["total_tokens"]
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("case", ["hard_lock", "hard_lock/apg", "kvedit_inversion_free", "sample_prediction",
                                  "rectangle"])
def test_fg_only_box_arithmetic_equals_the_whole_latent_arithmetic_bit_for_bit(case, tiny_backbone, real_clip,
                                                                                request):
    """Without a step callback, fg-only runs guidance, Euler step and paste on the fg tokens' latent
    box (and Wan writes its output there); a callback makes it use whole latents. Same numbers,
    for a mask whose tokens fill their box (`rectangle`: no zero fill) and one whose do not."""
    from kvlock.methods import compose_method

    method, _, rule = case.partition("/")
    backbone = tiny_backbone
    if method == "rectangle":
        method, mask = "hard_lock", np.zeros_like(real_clip.mask)
        mask[:, 16:48, 32:80] = True
        real_clip = replace(real_clip, mask=mask)
    if method == "sample_prediction":
        method, backbone = "hard_lock", request.getfixturevalue("sample_backbone")
    overrides = ["method.fg_only=true"] + ([f"method.guidance.rule={rule}", "method.guidance.apg_eta=0.3",
                                            "method.guidance.apg_momentum=-0.5"] if rule else [])
    config = compose_method(method, overrides, steps=3)
    steps = []
    boxed = run_edit(backbone, real_clip, config, seed=0)
    whole = run_edit(backbone, real_clip, config, seed=0, callback=lambda info: steps.append(info["v"].shape))
    assert steps and all(shape == boxed.latents.shape for shape in steps)  # the callback saw whole latents
    assert torch.equal(boxed.latents, whole.latents)
    assert np.array_equal(boxed.frames, whole.frames)


def test_latent_box_holds_exactly_the_fg_tokens_patches():
    from kvlock.engine.token_mask import latent_box

    geometry = LatentGeometry(temporal_factor=4, spatial_factor=2, patch_size=(1, 2, 2), latent_channels=4)
    tokens = torch.zeros(3, 4, 5, dtype=torch.bool)
    tokens[1, 1, 2] = tokens[2, 2, 3] = True
    assert latent_box(tokens, geometry) == (slice(1, 3), slice(2, 6), slice(4, 8))
    assert latent_box(torch.zeros(3, 4, 5, dtype=torch.bool), geometry) is None


def test_fg_only_rejects_soft_locking():
    with pytest.raises(ValueError, match="fg_only needs a hard lock"):
        EditConfig(fg_only=True, alpha=0.5)


def test_inversion_reconstruction_error_falls_with_steps(tiny_backbone, real_clip):
    errors = []
    for steps in (2, 8, 32):
        cfg = EditConfig(steps=steps, source="inversion", init="inversion", bg_kv="none", compose="none",
                         target_prompt_is_source=True, guidance=NO_CFG)
        out = run_edit(tiny_backbone, real_clip, cfg, seed=0)
        errors.append(float(np.abs(out.frames.astype(float) - real_clip.frames).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_kv_store_bytes_match_the_formula_and_noised_memory_does_not_grow(tiny_backbone, random_clip):
    geo = tiny_backbone.geometry
    bg_tokens = int((~token_mask(random_clip.mask, geo)).sum())
    layers, dim = tiny_backbone.num_layers, tiny_backbone.inner_dim
    for steps, kv_dtype, nbytes in ((3, "float32", 4), (6, "float32", 4), (6, "bfloat16", 2)):
        out = run_edit(tiny_backbone, random_clip, EditConfig(steps=steps, guidance=NO_CFG, kv_dtype=kv_dtype),
                       seed=0)
        assert out.stats["kv_store_bytes"] == steps * layers * 2 * bg_tokens * dim * nbytes
    retained = []
    for steps in (3, 9):
        cfg = EditConfig(steps=steps, source="noised", init="noised", compose="none", guidance=NO_CFG)
        out = run_edit(tiny_backbone, random_clip, cfg, seed=0)
        retained.append(out.stats["retained_bytes"])
        assert out.stats["kv_store_bytes"] == 0
    assert retained[0] == retained[1] == 0


def test_cpu_offloaded_store_gives_the_same_edit(tiny_backbone, random_clip):
    a = run_edit(tiny_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG), seed=0)
    b = run_edit(tiny_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG, kv_store="cpu"), seed=0)
    torch.testing.assert_close(a.latents, b.latents, atol=0, rtol=0)


def test_token_mask_any_pixel_rule_and_temporal_pooling():
    geo = LatentGeometry(temporal_factor=4, spatial_factor=2, patch_size=(1, 2, 2), latent_channels=48)
    mask = np.zeros((9, 16, 16), bool)
    mask[5, 0, 0] = True  # one pixel in frame 5 -> latent frame 2 ((5-1)//4 + 1), token (0, 0)
    tokens = token_mask(mask, geo)
    assert tokens.shape == (3, 4, 4)
    assert tokens.sum() == 1 and tokens[2, 0, 0]
    dilated = token_mask(mask, geo, dilation=1)
    assert dilated.sum() == 4 and dilated[2, :2, :2].all()
    pixels = tokens_to_pixels(tokens, geo, 9)
    assert pixels.shape == (9, 16, 16) and pixels[5:9, :4, :4].all() and pixels.sum() == 4 * 16


def test_controller_fuses_background_kv_only_for_target_rows():
    fg = torch.tensor([True, False, False, True])
    ctrl = KVController(fg)
    ctrl.mode = "edit"
    ctrl.rows = [Row("target", "cond"), Row("source", "cond")]
    ctrl.source_row_of = {0: 1}
    ctrl.alpha = torch.tensor([1.0, 0.25])
    k = torch.randn(2, 4, 1, 2)
    v = torch.randn(2, 4, 1, 2)
    k2, v2, bias = ctrl(0, k, k, v)
    assert bias is None
    torch.testing.assert_close(k2[1], k[1])  # source row untouched
    torch.testing.assert_close(k2[0, fg], k[0, fg])  # fg tokens keep new K
    torch.testing.assert_close(k2[0, 1], k[1, 1])  # α = 1: cached K
    torch.testing.assert_close(v2[0, 2], 0.75 * v[0, 2] + 0.25 * v[1, 2])


def test_controller_inversion_mask_separates_fg_and_bg_and_scale_biases_bg_keys():
    fg = torch.tensor([True, False, False])
    ctrl = KVController(fg)
    ctrl.mode, ctrl.rows, ctrl.store, ctrl.separate_fg_bg = "capture", [Row("source", "cond")], KVStore(), True
    q = torch.randn(1, 3, 1, 2)
    _, _, mask = ctrl(0, q, q, q)
    expected = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    assert torch.equal(mask[0, 0], expected)
    assert ctrl.store.nbytes == 2 * 2 * 2 * 4  # K and V of 2 bg tokens, 1 head x 2 dims, fp32
    ctrl.mode, ctrl.rows, ctrl.alpha, ctrl.bg_logit_bias = "edit", [Row("target", "cond")], torch.ones(2), 1.5
    ctrl.store_branch_of = {0: "cond"}
    _, _, bias = ctrl(0, q, q, q)
    assert bias[0, 0, 0].tolist() == [0.0, 1.5, 1.5]


def test_inversion_attention_mask_changes_the_cached_kv(tiny_backbone, random_clip):
    plain = run_edit(tiny_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG), seed=0)
    masked = run_edit(tiny_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG, attn_mask=True), seed=0)
    assert not torch.allclose(plain.latents, masked.latents)


def test_same_seed_same_output_and_different_seed_different_output(tiny_backbone, random_clip):
    cfg = EditConfig(steps=3, source="noised", init="noised", compose="none", guidance={"rule": "cfg"})
    a = run_edit(tiny_backbone, random_clip, cfg, seed=1)
    b = run_edit(tiny_backbone, random_clip, cfg, seed=1)
    c = run_edit(tiny_backbone, random_clip, cfg, seed=2)
    assert np.array_equal(a.frames, b.frames) and a.trace == b.trace
    assert not np.array_equal(a.frames, c.frames)


def test_non_finite_prediction_fails_at_its_step(tiny_backbone, random_clip):
    """A NaN injected into the transformer output at the 2nd edit step is caught at that step."""
    calls = []

    def poison(module, args, output):
        calls.append(1)
        if len(calls) == 3 + 2:  # 3 inversion forwards, then edit steps 0, 1
            return torch.full_like(output, float("nan"))
        return output

    handle = tiny_backbone.transformer.proj_out.register_forward_hook(poison)
    try:
        for mode, abort in (("fail", False), ("stop", True)):
            calls.clear()
            with pytest.raises(NonFiniteError, match="non-finite velocity at step 1") as err:
                run_edit(tiny_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG, nonfinite=mode), seed=0)
            assert err.value.step == 1 and err.value.abort is abort
    finally:
        handle.remove()



def test_bfloat16_transformer_keeps_the_sampler_in_float32_and_the_lock_exact(random_clip):
    """bf16 weights and activations, fp32 latents and guidance: the hard lock stays bit-exact."""
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "wan_tiny.yaml")
    cfg.dtype = "bfloat16"
    backbone = build_backbone(cfg)
    assert backbone.transformer.dtype == torch.bfloat16
    out = run_edit(backbone, random_clip, EditConfig(steps=3, guidance={"rule": "cfg"}), seed=0)
    assert out.latents.dtype == torch.float32 and torch.isfinite(out.latents).all()
    bg = background_pixels(random_clip, backbone)
    assert np.array_equal(out.frames[bg], random_clip.frames[bg])
