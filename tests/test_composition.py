"""Background composition per latent pixel, pixel paste-back, KV-Edit's inversion-free update,
KV-Edit's attention mask in the source pass, and KV-Lock's background latents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO

from kvlock.engine.config import EditConfig
from kvlock.engine.controller import KVController
from kvlock.engine.editor import run_edit
from kvlock.engine.timesteps import flow_timesteps
from kvlock.engine.token_mask import latent_mask, token_mask, tokens_to_latent
from kvlock.methods import compose_method

HELD_OUT = REPO.parent / "shared" / "eval" / "videos"
KVLOCK_FAMILY = ["kvlock", "fixed_cfg", "fixed_fusion", "cfg_zero_star", "apg", "kvlock_abl_var_kv_only",
                 "kvlock_abl_omega_only", "kvlock_abl_sstar_only", "kvlock_abl_sstar_omega",
                 "kvlock_abl_fixed_alpha", "kvlock_abl_global_sigma"]


def latent_pixel_footprint(mask: np.ndarray, temporal: int = 4, spatial: int = 2) -> np.ndarray:
    """(T, H, W) bool: the pixels of every latent pixel that holds any mask pixel, by hand (frame 0
    alone, then groups of `temporal` frames; blocks of spatial x spatial pixels)."""
    groups = [mask[:1]] + [mask[1 + k: 1 + k + temporal] for k in range(0, len(mask) - 1, temporal)]
    out = np.zeros_like(mask)
    t0 = 0
    for group in groups:
        any_frame = group.any(0)
        h, w = any_frame.shape
        blocks = any_frame.reshape(h // spatial, spatial, w // spatial, spatial).any((1, 3))
        out[t0:t0 + len(group)] = blocks.repeat(spatial, 0).repeat(spatial, 1)
        t0 += len(group)
    return out


@pytest.fixture(scope="module")
def held_out_clips():
    """The three held-out clips (../shared/eval/videos), 9 frames at a quarter of their size."""
    from kvlock.data.sample import EditSample
    from kvlock.data.video_io import read_frames, read_masks

    clips = {}
    for name in ("car-roundabout", "dance-twirl", "dogs-jump"):
        frames = read_frames(HELD_OUT / name / "frames")[:9, ::4, ::4]
        mask = read_masks(HELD_OUT / name / "masks")[:9, ::4, ::4] > 127
        h, w = frames.shape[1] // 4 * 4, frames.shape[2] // 4 * 4
        clips[name] = EditSample(f"{name}__red", name, np.ascontiguousarray(frames[:, :h, :w]),
                                 np.ascontiguousarray(mask[:, :h, :w]), f"a video of {name}",
                                 f"a red video of {name}", "color_change")
    return clips


def test_latent_mask_is_the_pixel_mask_per_latent_pixel_inside_the_token_mask(tiny_backbone, real_clip):
    geo = tiny_backbone.geometry
    lat = latent_mask(real_clip.mask, geo)[0, 0].numpy()
    by_hand = latent_pixel_footprint(real_clip.mask)
    assert np.array_equal(lat, np.concatenate([by_hand[:1], by_hand[1::4]])[:, ::2, ::2])
    for dilation in (0, 1):
        tokens = tokens_to_latent(token_mask(real_clip.mask, geo, dilation), geo)
        grown = latent_mask(real_clip.mask, geo, dilation)
        assert not (grown & ~tokens).any()  # composition never pastes into a generated token
    # boundary tokens hold background latent pixels: per-token composition regenerates them
    assert (tokens_to_latent(token_mask(real_clip.mask, geo), geo) & ~latent_mask(real_clip.mask, geo)).any()
    assert (latent_mask(real_clip.mask, geo, 1) & ~latent_mask(real_clip.mask, geo)).any()


def test_hard_lock_keeps_every_background_latent_pixel_of_boundary_tokens(tiny_backbone, real_clip):
    sample = real_clip
    out = run_edit(tiny_backbone, sample, compose_method("hard_lock", steps=2), seed=0)
    keep = ~latent_pixel_footprint(sample.mask)
    diff = np.abs(out.frames.astype(int) - sample.frames)
    assert diff[keep].max() == 0
    assert diff[~keep].max() > 0


@pytest.mark.parametrize("name", ["car-roundabout", "dance-twirl", "dogs-jump"])
def test_paste_back_makes_the_background_exact_on_held_out_clips(name, held_out_clips, tiny_backbone):
    sample = held_out_clips[name]
    assert sample.mask.any() and not sample.mask.all()
    pasted = run_edit(tiny_backbone, sample, compose_method("hard_lock", ["method.paste_back=true"], steps=2),
                      seed=0)
    plain = run_edit(tiny_backbone, sample, compose_method("hard_lock", steps=2), seed=0)
    bg = ~sample.mask
    mse = ((pasted.frames[bg].astype(float) - sample.frames[bg]) / 255.0) ** 2
    assert mse.mean() == 0.0
    assert np.array_equal(pasted.frames[sample.mask], plain.frames[sample.mask])
    assert np.abs(plain.frames[bg].astype(int) - sample.frames[bg]).max() > 0  # partial latent pixels


def grown(mask: np.ndarray, r: int) -> np.ndarray:
    """(T, H, W) bool grown by r pixels in H and W (square neighbourhood), by hand."""
    padded = np.pad(mask, ((0, 0), (r, r), (r, r)))
    _, h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[:, dy:dy + h, dx:dx + w]
    return out


def test_paste_back_keeps_the_dilated_region(tiny_backbone, random_clip):
    """Dilation by one token (2x2 latent pixels = 4 pixels here) widens what paste-back keeps."""
    cfg = compose_method("hard_lock", ["method.paste_back=true", "method.mask_dilation=1"], steps=2)
    out = run_edit(tiny_backbone, random_clip, cfg, seed=0)
    region = grown(random_clip.mask, 4)
    diff = np.abs(out.frames.astype(int) - random_clip.frames)
    assert diff[~region].max() == 0
    assert diff[region & ~random_clip.mask].max() > 0  # the grown ring is edited, not pasted over


# --- KV-Lock's background latents ------------------------------------------------------------


@pytest.mark.parametrize("name", KVLOCK_FAMILY)
def test_kvlock_family_holds_the_noised_source_background(name):
    cfg = compose_method(name)
    assert (cfg.source, cfg.init, cfg.compose, cfg.paste_back) == ("noised", "noised", "every_step", False)
    assert not cfg.needs_inversion


def test_kvlock_background_is_the_source_and_compose_none_regenerates_it(tiny_backbone, random_clip):
    keep = ~latent_pixel_footprint(random_clip.mask)
    held = run_edit(tiny_backbone, random_clip, compose_method("kvlock", steps=4), seed=0)
    assert np.abs(held.frames[keep].astype(int) - random_clip.frames[keep]).max() == 0
    assert held.stats["kv_store_bytes"] == held.stats["retained_bytes"] == 0
    regenerated = run_edit(tiny_backbone, random_clip, compose_method("kvlock", ["method.compose=none"], steps=4),
                           seed=0)
    assert np.abs(regenerated.frames[keep].astype(float) - random_clip.frames[keep]).mean() > 10


# --- KV-Edit inversion-free --------------------------------------------------------------------


def test_inversion_free_follows_kvedit_update_and_stores_no_kv(tiny_backbone, random_clip):
    """z_tar = z_src − z0 + z_fe and z_fe += dt·(v_tar − v_src)·m, checked step by step in KV-Edit's
    own variables (flux/sampling.py denoise_kv_inf), v_src and v_tar as the run saw them."""
    cfg = compose_method("kvedit_inversion_free", ["method.skip_steps=1"], steps=4)
    seen = []
    out = run_edit(tiny_backbone, random_clip, cfg, seed=5, callback=seen.append)
    assert [s["step"] for s in seen] == [1, 2, 3]
    assert out.stats["kv_store_bytes"] == out.stats["retained_bytes"] == out.stats["inversion_nfe"] == 0
    z0 = tiny_backbone.encode_video(random_clip.frames)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(5))
    ts = flow_timesteps(4, cfg.shift)
    m = latent_mask(random_clip.mask, tiny_backbone.geometry).float()
    z_fe = z0.clone()
    for s in seen:
        t_curr, t_prev = ts[s["step"]], ts[s["step"] + 1]
        z_src = (1 - t_curr) * z0 + t_curr * noise
        torch.testing.assert_close(s["x_t"], z_src - z0 + z_fe, atol=1e-5, rtol=0)
        z_fe = z_fe + (t_prev - t_curr) * (s["v"] - s["v_source"]) * m
    torch.testing.assert_close(out.latents, z_fe, atol=1e-5, rtol=0)
    keep = ~latent_pixel_footprint(random_clip.mask)
    assert np.abs(out.frames[keep].astype(int) - random_clip.frames[keep]).max() == 0


def test_inversion_free_reconstructs_the_source_when_nothing_is_edited(tiny_backbone, random_clip):
    same = ["method.target_prompt_is_source=true", "method.guidance.rule=none"]
    free = run_edit(tiny_backbone, random_clip, compose_method("kvedit_inversion_free", same, steps=3), seed=0)
    assert np.array_equal(free.frames, random_clip.frames)  # v_tar = v_src: the displacement stays 0
    euler = compose_method("kvedit_inversion_free", [*same, "method.latent_update=euler"], steps=3)
    assert np.abs(run_edit(tiny_backbone, random_clip, euler, seed=0).frames.astype(int) - random_clip.frames).max() > 0


def test_source_delta_needs_the_noised_source_frame():
    with pytest.raises(ValueError, match="latent_update=source_delta"):
        EditConfig(latent_update="source_delta")  # source=inversion
    with pytest.raises(ValueError, match="latent_update=source_delta"):
        EditConfig(latent_update="source_delta", source="noised", init="noised", compose="none")


# --- KV-Edit attention mask in the source pass --------------------------------------------------


def source_velocity(backbone, sample, t, seed, separate):
    """Velocity of the forward-noised source at t with the source prompt, AM on or off."""
    z0 = backbone.encode_video(sample.frames)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    context = backbone.encode_prompt([sample.source_prompt, sample.target_prompt, backbone.negative_prompt])
    controller = KVController(token_mask(sample.mask, backbone.geometry).flatten())
    controller.separate_fg_bg = separate
    backbone.install_kv_control(controller)
    try:
        return backbone.velocity((1 - t) * z0 + t * noise, t.expand(1), context[0:1])
    finally:
        backbone.remove_kv_control()


@pytest.mark.parametrize("method", ["kvedit_inversion_free", "kvlock"])
def test_attn_mask_separates_fg_and_bg_in_the_noised_source_pass(method, tiny_backbone, random_clip):
    seen = []
    cfg = compose_method(method, ["method.attn_mask=true", "method.skip_steps=1"], steps=3)
    run_edit(tiny_backbone, random_clip, cfg, seed=0, callback=seen.append)
    t = flow_timesteps(3, cfg.shift)[1]
    masked = source_velocity(tiny_backbone, random_clip, t, 0, separate=True)
    torch.testing.assert_close(seen[0]["v_source"], masked, atol=1e-5, rtol=1e-5)
    plain = source_velocity(tiny_backbone, random_clip, t, 0, separate=False)
    assert (masked - plain).abs().max() > 1e-3


def test_attn_mask_changes_a_kvlock_edit(tiny_backbone, random_clip):
    off = run_edit(tiny_backbone, random_clip, compose_method("kvlock", steps=3), seed=0)
    on = run_edit(tiny_backbone, random_clip, compose_method("kvlock", ["method.attn_mask=true"], steps=3), seed=0)
    assert (on.latents - off.latents).abs().max() > 1e-4


def test_attn_mask_applies_to_an_inversion_that_captures_nothing(tiny_backbone, random_clip):
    base = dict(steps=3, bg_kv="none", compose="none", guidance={"rule": "none"})
    off = run_edit(tiny_backbone, random_clip, EditConfig(**base), seed=0)
    on = run_edit(tiny_backbone, random_clip, EditConfig(**base, attn_mask=True), seed=0)
    assert (on.latents - off.latents).abs().max() > 1e-4


def test_attn_mask_without_any_source_pass_is_rejected():
    with pytest.raises(ValueError, match="method.attn_mask=true .* runs none"):
        EditConfig(source="noised", init="noised", bg_kv="none", compose="none", attn_mask=True)
