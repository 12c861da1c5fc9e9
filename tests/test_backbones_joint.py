"""The engine's invariants on the joint-attention backbones (CogVideoX: [text; video] in one
attention; HunyuanVideo: dual- then single-stream blocks over [video; text]), at tiny size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kvlock.engine.config import EditConfig
from kvlock.engine.controller import KVController
from kvlock.engine.editor import run_edit
from kvlock.engine.token_mask import token_mask, tokens_to_pixels
from kvlock.methods import available_methods, compose_method

REPO = Path(__file__).resolve().parents[1]
JOINT = ["cogvideox_tiny", "hunyuan_tiny"]
NO_CFG = {"rule": "none"}


@pytest.fixture(scope="module", params=JOINT)
def joint_backbone(request):
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    return build_backbone(OmegaConf.load(REPO / "conf" / "model" / f"{request.param}.yaml"))


def stock_forward(backbone, z, t, ctx):
    """diffusers' own forward of the backbone's transformer, in the engine's (B, C, F, h, w) layout."""
    tr = backbone.transformer
    if backbone.name.startswith("cogvideox"):
        from kvlock.backbones.cogvideox_forward import cogvideox_rope

        p = tr.config.patch_size
        rope = cogvideox_rope(tr, z.shape[2], z.shape[3] // p, z.shape[4] // p, z.device)
        out = tr(z.permute(0, 2, 1, 3, 4), encoder_hidden_states=ctx, timestep=t * 1000,
                 image_rotary_emb=rope, return_dict=False)[0]
        return out.permute(0, 2, 1, 3, 4)
    return tr(z, timestep=t * 1000, encoder_hidden_states=ctx, encoder_attention_mask=torch.ones(ctx.shape[:2]),
              pooled_projections=ctx.mean(1), return_dict=False)[0]


class RecordingController(KVController):
    """The real controller, noting the token count of every K it is handed."""

    def __init__(self, fg):
        super().__init__(fg)
        self.seen: list[tuple[int, int]] = []

    def __call__(self, layer, q, k, v):
        self.seen.append((layer, k.shape[1]))
        return super().__call__(layer, q, k, v)


def test_control_off_equals_the_stock_forward_and_text_never_reaches_the_controller(joint_backbone, random_clip):
    z = joint_backbone.encode_video(random_clip.frames)
    z = torch.cat([z, z.flip(-1)])
    ctx = joint_backbone.encode_prompt(["a red square", "a blue circle"])
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        reference = stock_forward(joint_backbone, z, t, ctx)
    fg = token_mask(random_clip.mask, joint_backbone.geometry).flatten()
    controller = RecordingController(fg)
    joint_backbone.install_kv_control(controller)
    try:
        controlled = joint_backbone.velocity(z, t, ctx)
    finally:
        joint_backbone.remove_kv_control()
    torch.testing.assert_close(controlled, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(joint_backbone.velocity(z, t, ctx), reference, atol=1e-5, rtol=1e-5)
    assert controller.seen == [(layer, fg.numel()) for layer in range(joint_backbone.num_layers)]


def test_hard_lock_keeps_background_pixels_exact(joint_backbone, real_clip):
    out = run_edit(joint_backbone, real_clip, EditConfig(steps=3, alpha=1.0, compose="every_step"), seed=0)
    fg = token_mask(real_clip.mask, joint_backbone.geometry)
    bg = ~tokens_to_pixels(fg, joint_backbone.geometry, real_clip.num_frames)
    diff = np.abs(out.frames.astype(int) - real_clip.frames.astype(int))
    assert bg.any() and diff[bg].max() == 0
    assert diff[~bg].max() > 0  # the foreground was regenerated


def test_fg_only_equals_full_token_hard_lock(joint_backbone, random_clip):
    full = run_edit(joint_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG), seed=0)
    fast = run_edit(joint_backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG, fg_only=True), seed=0)
    torch.testing.assert_close(fast.latents, full.latents, atol=1e-4, rtol=0)
    assert fast.stats["fg_tokens"] < fast.stats["total_tokens"]


def test_kv_lock_changes_the_edit_so_the_text_stays_unlocked_but_the_video_kv_is_used(joint_backbone, random_clip):
    """Fusing the source K/V must change the output (control reaches every layer kind)."""
    plain = run_edit(joint_backbone, random_clip, EditConfig(steps=2, bg_kv="none", compose="none",
                                                             guidance=NO_CFG), seed=0)
    locked = run_edit(joint_backbone, random_clip, EditConfig(steps=2, compose="none", guidance=NO_CFG), seed=0)
    assert (locked.latents - plain.latents).abs().max() > 1e-4


def test_inversion_reconstruction_error_falls_with_steps(joint_backbone, random_clip):
    errors = []
    for steps in (2, 16):
        cfg = EditConfig(steps=steps, source="inversion", init="inversion", bg_kv="none", compose="none",
                         target_prompt_is_source=True, guidance=NO_CFG)
        out = run_edit(joint_backbone, random_clip, cfg, seed=0)
        errors.append(float(np.abs(out.frames.astype(float) - random_clip.frames).mean()))
    assert errors[0] > errors[1]


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_every_method_runs_on_every_joint_backbone(name, joint_backbone, random_clip):
    cfg = compose_method(name, steps=2)
    out = run_edit(joint_backbone, random_clip, cfg, seed=0)
    assert out.frames.shape == random_clip.frames.shape
    assert len(out.trace) == 2 and out.trace[-1]["nfe"] == out.nfe > 0
    assert np.isfinite(out.latents.cpu().numpy()).all()
