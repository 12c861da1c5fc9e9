"""KV-Lock and the baseline family as named engine configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.apg import APG
from baselines.cfg_zero_star import cfg_zero_star
from kvlock.engine.config import EditConfig
from kvlock.engine.editor import run_edit
from kvlock.engine.token_mask import token_mask, tokens_to_latent, tokens_to_pixels
from kvlock.methods import available_methods, compose_method

MAIN = ["kvlock", "hard_lock", "full_injection", "fixed_cfg", "fixed_fusion", "cfg_zero_star", "apg",
        "reconstruct", "kvedit_inversion_free"]
ABLATION = ["kvlock_abl_var_kv_only", "kvlock_abl_omega_only", "kvlock_abl_sstar_only",
            "kvlock_abl_sstar_omega", "kvlock_abl_fixed_alpha", "kvlock_abl_global_sigma",
            "kvlock_abl_guidance_fg"]


def test_every_named_method_exists():
    assert set(MAIN + ABLATION) <= set(available_methods())


@pytest.mark.parametrize("name", MAIN + ABLATION)
def test_every_method_composes_and_runs_on_a_real_clip(name, tiny_backbone, real_clip):
    cfg = compose_method(name, steps=3)
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0)
    assert out.frames.shape == real_clip.frames.shape
    assert len(out.trace) == 3 and out.trace[-1]["nfe"] == out.nfe > 0
    assert {"sigma2", "active", "alpha_mean", "alpha_q10", "alpha_q90", "omega", "omega_fg", "omega_bg",
            "s_star", "nfe"} <= set(out.trace[0])
    assert out.stats["guidance_rule"] == cfg.guidance.rule and out.stats["omega_rule"] == cfg.guidance.omega_rule


def test_ablation_rows_are_one_override_from_kvlock():
    full = compose_method("kvlock")
    assert compose_method("kvlock", ["method.detector.signal=global"]).detector == \
        compose_method("kvlock_abl_global_sigma").detector
    assert compose_method("kvlock", ["method.alpha=0.5", "method.bg_kv=const"]).alpha == 0.5
    assert full.bg_kv == "variance" and full.guidance.rule == "cfg_zero_star"
    assert full.guidance.omega_rule == "literal" and full.source == "noised"
    assert (full.detector.window, full.detector.active_last, full.detector.tau) == (0.2, 0.4, 0.01)
    assert full.guidance.region == "all" and compose_method("kvlock_abl_guidance_fg").guidance.region == "fg"


def kvlock_with(tau, inactive_alpha, steps=4):
    return compose_method("kvlock", [f"method.detector.tau={tau}", f"method.detector.inactive_alpha={inactive_alpha}",
                                     "method.detector.window=0.5", "method.guidance.omega_rule=constant",
                                     "method.guidance.rule=cfg"], steps=steps)


def test_kvlock_locks_fully_when_variance_exceeds_tau_and_not_at_all_when_it_vanishes(tiny_backbone, real_clip):
    locked = run_edit(tiny_backbone, real_clip, kvlock_with(1e-12, 1.0), seed=0)
    assert all(row["alpha_mean"] == 1.0 for row in locked.trace)
    assert any(row["active"] for row in locked.trace)
    hard = compose_method("kvlock", ["method.bg_kv=const", "method.alpha=1.0", "method.guidance.rule=cfg",
                                     "method.guidance.omega_rule=constant"], steps=4)
    torch.testing.assert_close(locked.latents, run_edit(tiny_backbone, real_clip, hard, seed=0).latents,
                               atol=1e-6, rtol=0)

    free = run_edit(tiny_backbone, real_clip, kvlock_with(1e9, 0.0), seed=0)
    assert all(row["alpha_mean"] < 1e-6 for row in free.trace)
    none = compose_method("kvlock", ["method.bg_kv=none", "method.guidance.rule=cfg",
                                     "method.guidance.omega_rule=constant"], steps=4)
    torch.testing.assert_close(free.latents, run_edit(tiny_backbone, real_clip, none, seed=0).latents,
                               atol=1e-5, rtol=0)


def test_token_level_signal_gives_per_token_alpha(tiny_backbone, real_clip):
    cfg = compose_method("kvlock", ["method.detector.signal=token", "method.detector.window=0.5",
                                    "method.detector.tau=0.003"], steps=5)
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0)
    active = [row for row in out.trace if row["active"]]
    assert active and all(0.0 <= row["alpha_q10"] <= row["alpha_q90"] <= 1.0 for row in active)


def test_fixed_cfg_has_constant_omega_and_kvlock_literal_omega_follows_sigma(tiny_backbone, real_clip):
    fixed = run_edit(tiny_backbone, real_clip, compose_method("fixed_cfg", steps=4), seed=0)
    assert len({row["omega"] for row in fixed.trace}) == 1
    cfg = compose_method("kvlock", ["method.detector.window=0.5"], steps=4)
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0)
    for row in out.trace:
        if row["active"]:
            expected = cfg.guidance.scale * min(max(row["sigma2"] / cfg.detector.tau, 0), cfg.guidance.omega_max_ratio)
            assert row["omega"] == pytest.approx(expected)
            assert row["s_star"] is not None
        else:
            assert row["omega"] == cfg.guidance.scale


def test_boost_rule_raises_omega_above_base(tiny_backbone, real_clip):
    cfg = compose_method("kvlock", ["method.detector.window=0.5", "method.guidance.omega_rule=boost"], steps=4)
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0)
    active = [row for row in out.trace if row["active"]]
    assert active and all(row["omega"] >= cfg.guidance.scale for row in active)


def bg_pixels(sample, backbone):
    return ~tokens_to_pixels(token_mask(sample.mask, backbone.geometry), backbone.geometry, sample.num_frames)


def test_full_injection_changes_background_while_hard_lock_does_not(tiny_backbone, real_clip):
    bg = bg_pixels(real_clip, tiny_backbone)
    hard = run_edit(tiny_backbone, real_clip, compose_method("hard_lock", steps=4), seed=0)
    inject = run_edit(tiny_backbone, real_clip, compose_method("full_injection", steps=4), seed=0)
    assert np.array_equal(hard.frames[bg], real_clip.frames[bg])
    assert np.abs(inject.frames[bg].astype(int) - real_clip.frames[bg]).max() > 0


def test_reconstruct_returns_the_source_closely_with_enough_steps(tiny_backbone, real_clip):
    errors = {}
    for steps in (2, 24):
        out = run_edit(tiny_backbone, real_clip, compose_method("reconstruct", steps=steps), seed=0)
        errors[steps] = float(np.abs(out.frames.astype(float) - real_clip.frames).mean())
    assert errors[24] < errors[2] and errors[24] < 2.0  # mean abs error in 0..255 units


def test_cfg_zero_star_matches_its_formula_on_random_tensors():
    g = torch.Generator().manual_seed(0)
    v_c, v_u = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    v, s = cfg_zero_star(v_c, v_u, omega=4.0, eps=1e-8)
    for b in range(2):
        c, u = v_c[b].numpy().ravel(), v_u[b].numpy().ravel()
        s_ref = c @ u / (u @ u + 1e-8)
        np.testing.assert_allclose(s[b].item(), s_ref, rtol=1e-5)
        np.testing.assert_allclose(v[b].numpy().ravel(), -3.0 * s_ref * u + 4.0 * c, rtol=1e-5, atol=1e-6)


def test_apg_without_projection_terms_reduces_to_cfg_orthogonal_part():
    g = torch.Generator().manual_seed(1)
    v_c, v_u = torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)
    out = APG(eta=1.0)(v_c, v_u, omega=3.0)  # η = 1 keeps the parallel part: plain CFG
    torch.testing.assert_close(out, v_u + 3.0 * (v_c - v_u))
    ortho = APG(eta=0.0)(v_c, v_u, omega=3.0) - v_c
    assert abs(float((ortho * v_c).sum())) < 1e-5  # the update is orthogonal to v_c


def test_invalid_knob_value_names_the_key():
    with pytest.raises(ValueError, match="method.compose='sometimes'"):
        EditConfig(compose="sometimes")
    with pytest.raises(ValueError, match="Unknown method 'nope'"):
        compose_method("nope")


@pytest.mark.parametrize("signal", ["fg", "global", "token"])
def test_detector_running_variance_equals_the_windowed_sample_variance(signal):
    from kvlock.hallucination import HallucinationDetector

    g = torch.Generator().manual_seed(0)
    fg = torch.zeros(1, 1, 2, 4, 4, dtype=torch.bool)
    fg[..., :2, :2] = True
    detector = HallucinationDetector(window=4, signal=signal, fg_latent=fg, patch_size=(1, 2, 2))
    history = []
    for _ in range(9):
        x = torch.randn(1, 3, 2, 4, 4, generator=g) * torch.rand(1, generator=g)
        history.append(x)
        detector.update(x)
    var = torch.stack(history[-4:]).var(dim=0, unbiased=True)
    sigma2, per_token = detector.sigma2()
    expected = var.mean() if signal == "global" else var[fg.expand_as(var)].mean()
    assert sigma2 == pytest.approx(float(expected), rel=1e-5)
    if signal == "token":
        tokens = torch.nn.functional.avg_pool3d(var.mean(1, keepdim=True), (1, 2, 2), (1, 2, 2)).flatten()
        torch.testing.assert_close(per_token, tokens, rtol=1e-5, atol=1e-7)
    else:
        assert per_token is None


# --- the active window scales with the schedule ------------------------------------------------


def active_steps(steps: int) -> list[int]:
    """Steps at which KV-Lock's variance policy is active, fed one x̂0 per step."""
    from kvlock.backbones.geometry import LatentGeometry
    from kvlock.engine.policy import build_policy

    cfg = compose_method("kvlock", steps=steps)
    fg = torch.zeros(1, 1, 2, 4, 4, dtype=torch.bool)
    fg[..., :2, :2] = True
    policy = build_policy(cfg, fg, torch.arange(4), LatentGeometry(temporal_factor=4, spatial_factor=2, patch_size=(1, 2, 2), latent_channels=3))
    g = torch.Generator().manual_seed(0)
    active = []
    for step in range(steps):
        if policy.control(step).active:
            active.append(step)
        policy.observe(step, torch.randn(1, 3, 2, 4, 4, generator=g))
    return active


def test_kvlock_is_active_in_the_same_fraction_of_a_10_20_or_50_step_schedule():
    """κ = 0.4 of the schedule (the paper's last 20 of 50 steps): the last 4 of 10, 8 of 20, 20 of 50."""
    fractions = {}
    for steps in (10, 20, 50):
        active = active_steps(steps)
        assert active == list(range(active[0], steps)) and abs(active[0] - 0.6 * steps) <= 1
        fractions[steps] = len(active) / steps
    assert abs(fractions[10] - fractions[50]) <= 0.15 and abs(fractions[20] - fractions[50]) <= 0.15


@pytest.mark.parametrize("override, message", [
    ("method.detector.active_last=0.0", "method.detector.active_last=0.0 must be a fraction"),
    ("method.detector.window=1.0", "method.detector.window=1.0 must be a fraction"),
    ("method.detector.active_last=0.04", "method.detector.active_last=0.04 makes no step of steps=10"),
    ("method.detector.active_last=0.96", "method.detector.active_last=0.96 makes every step of steps=10"),
])
def test_an_empty_or_whole_run_detector_window_is_a_config_error_naming_the_knob(override, message):
    with pytest.raises(ValueError, match=message):
        compose_method("kvlock", [override], steps=10)


# --- where the variance-driven ω applies --------------------------------------------------------


@pytest.mark.parametrize("name", ["kvlock", "kvlock_abl_guidance_fg"])
def test_guidance_region_sets_omega_on_fg_and_bg_and_the_velocity_uses_both(name, tiny_backbone, real_clip,
                                                                             one_torch_thread):
    cfg = compose_method(name, ["method.guidance.rule=cfg", "method.detector.tau=0.0001"], steps=5)
    seen = []
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0, callback=seen.append)
    fg = tokens_to_latent(token_mask(real_clip.mask, tiny_backbone.geometry), tiny_backbone.geometry)
    fg = fg.expand_as(seen[0]["v"])
    assert [row["active"] for row in out.trace] == [False] * 3 + [True] * 2  # last κ = 0.4·5 steps
    assert any(row["omega_fg"] != cfg.guidance.scale for row in out.trace)
    for row, step in zip(out.trace, seen):
        expected_bg = row["omega_fg"] if cfg.guidance.region == "all" else cfg.guidance.scale
        assert row["omega"] == row["omega_fg"] and row["omega_bg"] == pytest.approx(expected_bg)
        v_c, v_u = step["v_cond"], step["v_uncond"]
        for region, omega in ((fg, row["omega_fg"]), (~fg, row["omega_bg"])):
            torch.testing.assert_close(step["v"][region], (v_u + omega * (v_c - v_u))[region])


# --- fg-only is a pure speed-up under every guidance rule --------------------------------------

FG_ONLY_CASES = {
    "cfg": [],
    "cfg_zero_star": ["method.guidance.zero_init_steps=1"],
    "apg": ["method.guidance.apg_eta=0.3", "method.guidance.apg_norm_threshold=0.5",
            "method.guidance.apg_momentum=-0.5"],
    "cfg_zero_star+literal_omega": ["method.guidance.omega_rule=literal", "method.detector.tau=0.0001"],
}


@pytest.mark.parametrize("case", FG_ONLY_CASES)
def test_fg_only_equals_the_full_token_run_for_every_guidance_rule(case, tiny_backbone, real_clip,
                                                                   one_torch_thread):
    rule = case.split("+")[0]
    overrides = [f"method.guidance.rule={rule}", *FG_ONLY_CASES[case]]
    full, fast = (run_edit(tiny_backbone, real_clip,
                           compose_method("hard_lock", [*overrides, f"method.fg_only={flag}"], steps=4), seed=0)
                  for flag in ("false", "true"))
    assert fast.nfe == full.nfe  # same rows per step; fg-only runs fewer tokens per row
    torch.testing.assert_close(fast.latents, full.latents, atol=2e-5, rtol=0)
    assert np.abs(fast.frames.astype(int) - full.frames.astype(int)).max() <= 1
    if rule == "cfg_zero_star":
        s_fast, s_full = ([row["s_star"] for row in out.trace] for out in (fast, full))
        np.testing.assert_allclose(s_fast, s_full, rtol=1e-5)


@pytest.mark.parametrize("method", ["cfg_zero_star", "kvedit_inversion_free"])
def test_fg_only_equals_the_full_token_run_with_the_noised_source(method, tiny_backbone, real_clip,
                                                                  one_torch_thread):
    """Noised source provider: the source rows run all tokens first, the target rows fg tokens only;
    the edit (latents, frames, background metrics) is the full-token run's."""
    full, fast = (run_edit(tiny_backbone, real_clip, compose_method(method, [f"method.fg_only={flag}"],
                                                                    steps=4), seed=0)
                  for flag in ("false", "true"))
    assert fast.nfe == full.nfe and fast.stats["kv_store_bytes"] == 0
    torch.testing.assert_close(fast.latents, full.latents, atol=2e-5, rtol=0)
    assert np.abs(fast.frames.astype(int) - full.frames.astype(int)).max() <= 1
    bg = ~real_clip.mask.astype(bool)
    bg_mse = [float((((out.frames.astype(float) - real_clip.frames) / 255.0)[bg] ** 2).mean())
              for out in (fast, full)]
    assert abs(bg_mse[0] - bg_mse[1]) < 1e-3


# --- CFG-Zero* and APG as their references compute them ----------------------------------------


def test_cfg_zero_star_baseline_zero_inits_the_first_two_steps_like_the_wan_reference(tiny_backbone, real_clip,
                                                                                     one_torch_thread):
    cfg = compose_method("cfg_zero_star", steps=4)
    assert cfg.guidance.zero_init_steps == 2  # CFG-Zero* Wan T2V: zero_steps=1, `i <= zero_steps`
    seen = []
    run_edit(tiny_backbone, real_clip, cfg, seed=0, callback=seen.append)
    assert [bool((step["v"] == 0).all()) for step in seen] == [True, True, False, False]


def test_region_restricted_s_star_is_s_star_of_the_selected_elements():
    from diffusers.guiders.classifier_free_zero_star_guidance import cfg_zero_star_scale

    from baselines.cfg_zero_star import optimised_scale

    g = torch.Generator().manual_seed(2)
    v_c, v_u = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    region = torch.rand(1, 1, 2, 4, 4, generator=g) > 0.5
    sel = region.expand_as(v_c)
    expected = cfg_zero_star_scale(v_c[sel][None], v_u[sel][None])
    torch.testing.assert_close(optimised_scale(v_c, v_u, 1e-8, region).flatten(), expected.flatten())
    torch.testing.assert_close(optimised_scale(v_c, v_u, 1e-8).flatten(),
                               cfg_zero_star_scale(v_c.flatten(1), v_u.flatten(1)).flatten())


def test_apg_guidance_acts_on_x0_as_the_papers_algorithm():
    """Guidance('apg') on velocities == the paper's normalized_guidance (diffusers' copy) on
    x̂0 = x − t·v with its momentum buffer, mapped back by v = (x − x̂0)/t, over 3 steps."""
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer, normalized_guidance

    from kvlock.engine.config import GuidanceConfig
    from kvlock.engine.guidance import Guidance

    eta, r, beta, omega = 0.2, 3.0, -0.5, 4.0
    fg = torch.ones(1, 1, 2, 4, 4, dtype=torch.bool)
    ours = Guidance(GuidanceConfig(rule="apg", apg_eta=eta, apg_norm_threshold=r, apg_momentum=beta), fg, None)
    buffer = MomentumBuffer(beta)
    g = torch.Generator().manual_seed(3)
    for step, t in enumerate((0.9, 0.6, 0.3)):
        x, v_c, v_u = (torch.randn(1, 3, 2, 4, 4, generator=g) for _ in range(3))
        t = torch.tensor(t)
        v, _ = ours(x, t, v_c, v_u, omega, omega, step)
        d_ref = normalized_guidance(x - t * v_c, x - t * v_u, omega - 1.0, buffer, eta, r,
                                    use_original_formulation=True)
        torch.testing.assert_close(v, (x - d_ref) / t, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, overrides", [
    ("hard_lock", []),  # α = 1 on every background token: the constant-α path of the trace
    ("kvlock", ["method.detector.signal=token", "method.detector.window=0.5", "method.detector.tau=0.1"]),
])
def test_trace_alpha_quantiles_are_torch_quantiles_of_the_step_alpha(name, overrides, tiny_backbone, real_clip):
    cfg = compose_method(name, overrides, steps=5)
    assert cfg.injection != "full"  # α then covers the background tokens only
    alphas = []
    out = run_edit(tiny_backbone, real_clip, cfg, seed=0, callback=lambda s: alphas.append(s["alpha"].clone()))
    for row, alpha in zip(out.trace, alphas, strict=True):
        expected = torch.quantile(alpha.float(), torch.tensor([0.1, 0.5, 0.9])).tolist()
        assert [row["alpha_q10"], row["alpha_q50"], row["alpha_q90"]] == expected
        assert row["alpha_mean"] == float(alpha.mean())
    if name == "hard_lock":
        assert all(row["alpha_q10"] == row["alpha_q90"] == 1.0 for row in out.trace)
    else:
        assert any(row["alpha_q10"] < row["alpha_q90"] for row in out.trace)  # the quantile path ran
