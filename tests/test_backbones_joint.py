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


def test_hard_lock_with_paste_back_has_background_mse_zero(joint_backbone, real_clip):
    """`method=hard_lock method.paste_back=true`: every pixel outside the mask is the source's."""
    out = run_edit(joint_backbone, real_clip, compose_method("hard_lock", ["method.paste_back=true"], steps=3),
                   seed=0)
    bg = ~real_clip.mask.astype(bool)
    diff = out.frames.astype(float) - real_clip.frames
    assert bg.any() and float((diff[bg] ** 2).mean()) == 0.0
    assert np.abs(diff[~bg]).max() > 0


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


def test_attention_mask_reaches_the_noised_source_rows_of_a_joint_attention(joint_backbone, random_clip):
    """KV-Edit's AM on the forward-noised source rows (per-row masks) runs in one joint attention
    and changes the edit (the source K/V the target reads come from a separated pass)."""
    plain = run_edit(joint_backbone, random_clip, compose_method("kvlock", steps=2), seed=0)
    masked = run_edit(joint_backbone, random_clip, compose_method("kvlock", ["method.attn_mask=true"], steps=2), seed=0)
    assert torch.isfinite(masked.latents).all()
    assert (masked.latents - plain.latents).abs().max() > 1e-5


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
    if cfg.conditioning not in ("none", joint_backbone.conditioning):  # vace needs a VACE model
        with pytest.raises(ValueError, match="needs a backbone that reads method.conditioning"):
            run_edit(joint_backbone, random_clip, cfg, seed=0)
        return
    out = run_edit(joint_backbone, random_clip, cfg, seed=0)
    assert out.frames.shape == random_clip.frames.shape
    assert len(out.trace) == 2 and out.trace[-1]["nfe"] == out.nfe > 0
    assert np.isfinite(out.latents.cpu().numpy()).all()


def save_tiny_cogvideox_pipeline(path):
    """A tiny CogVideoXPipeline (real classes, seeded random weights; CogVideoX-2b's layout:
    sin-cos positions, v-prediction on a zero-terminal-SNR DDPM schedule) saved the diffusers way."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(0)
    words = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "square", "circle"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, relative_attention_num_buckets=8)).eval()
    vae = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
                                 norm_num_groups=2, temporal_compression_ratio=4)
    transformer = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                              out_channels=4, time_embed_dim=8, text_embed_dim=16, num_layers=1,
                                              sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
                                              max_text_seq_length=8)
    scheduler = CogVideoXDDIMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                       timestep_spacing="trailing", snr_shift_scale=3.0)
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=scheduler)
    pipe.save_pretrained(path)
    return pipe


def test_saved_cogvideox_pipeline_loads_through_the_config_and_bridges_v_prediction(tmp_path, random_clip):
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone
    from kvlock.backbones.cogvideox import CogVideoXBackbone

    pipe = save_tiny_cogvideox_pipeline(tmp_path / "cog-tiny")
    cfg = OmegaConf.load(REPO / "conf" / "model" / "cogvideox_2b.yaml")
    cfg.update({"path": str(tmp_path / "cog-tiny"), "device": "cpu", "dtype": "float32",
                "max_sequence_length": 8, "local_files_only": True})
    backbone = build_backbone(cfg)
    assert isinstance(backbone, CogVideoXBackbone) and backbone.bridge is not None
    assert backbone.geometry.frame_rules.size_multiple == 16

    frames = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    z = backbone.encode_video(frames)
    x = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        mu = pipe.vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(z, mu * pipe.vae.config.scaling_factor, atol=1e-5, rtol=1e-5)
    ctx = backbone.encode_prompt(["a red square"])
    ref_ctx = pipe.encode_prompt("a red square", do_classifier_free_guidance=False, max_sequence_length=8)[0]
    torch.testing.assert_close(ctx, ref_ctx, atol=1e-5, rtol=1e-5)

    # At the flow time t whose noise level is DDPM step 600 exactly, the velocity must give back the
    # scheduler's own v-prediction estimates: ẑ0 = a·x_τ − σ·v̂ and ε̂ = σ·x_τ + a·v̂.
    acp = pipe.scheduler.alphas_cumprod[600].double()
    a, sigma = acp.sqrt(), (1 - acp).sqrt()
    t = float(sigma / (a + sigma))
    x_t = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    x_tau = x_t / ((1 - t) ** 2 + t**2) ** 0.5
    with torch.no_grad():
        v_hat = pipe.transformer(x_tau.permute(0, 2, 1, 3, 4), encoder_hidden_states=ref_ctx,
                                 timestep=torch.tensor([600]), return_dict=False)[0].permute(0, 2, 1, 3, 4)
    v = backbone.velocity(x_t, torch.tensor([t]), ctx)
    torch.testing.assert_close(x_t - t * v, float(a) * x_tau - float(sigma) * v_hat, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x_t + (1 - t) * v, float(sigma) * x_tau + float(a) * v_hat, atol=1e-4, rtol=1e-4)
    assert backbone.decode_latents(z).shape == frames.shape

    # fg-only through the bridge and the sin-cos position embeddings is still a pure speed-up
    full = run_edit(backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG), seed=0)
    fast = run_edit(backbone, random_clip, EditConfig(steps=3, guidance=NO_CFG, fg_only=True), seed=0)
    torch.testing.assert_close(fast.latents, full.latents, atol=1e-4, rtol=0)
    assert fast.stats["fg_tokens"] < fast.stats["total_tokens"]


def test_memory_estimate_reads_the_backbone_interface(joint_backbone):
    from kvlock.engine.memory import estimate_edit

    cfg = compose_method("hard_lock", steps=4)
    small = estimate_edit(joint_backbone, cfg, 9, 32, 32)
    large = estimate_edit(joint_backbone, cfg, 17, 64, 64)
    tokens = joint_backbone.geometry.num_tokens(9, 32, 32)
    expected_kv = 4 * joint_backbone.num_layers * 2 * int(tokens * 0.75) * joint_backbone.inner_dim * 4 * 2
    assert small.kv_store == expected_kv and large.kv_store > small.kv_store


def test_the_engine_imports_no_backbone_specific_module():
    import ast

    allowed = {"kvlock.backbones.geometry", "kvlock.backbones.runtime"}
    for path in sorted((REPO / "kvlock" / "engine").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name and name.startswith("kvlock.backbones"):
                    assert name in allowed, f"{path.name} imports {name}"


def save_tiny_hunyuan_pipeline(path):
    """A tiny HunyuanVideoPipeline (real classes, seeded random weights, guidance-distilled like
    the published model) saved the diffusers way."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        LlamaConfig,
        LlamaModel,
        PreTrainedTokenizerFast,
    )

    torch.manual_seed(0)
    words = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "square", "circle"]

    def tokenizer():
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")

    llama = LlamaModel(LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, pad_token_id=0)).eval()
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(words), hidden_size=8, intermediate_size=16,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        eos_token_id=1, pad_token_id=0, bos_token_id=0)).eval()
    vae = AutoencoderKLHunyuanVideo(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                    norm_num_groups=4, spatial_compression_ratio=8, temporal_compression_ratio=4)
    transformer = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2,
                                                 attention_head_dim=8, num_layers=1, num_single_layers=1,
                                                 num_refiner_layers=1, patch_size=2, patch_size_t=1,
                                                 text_embed_dim=32, pooled_projection_dim=8, rope_axes_dim=(2, 2, 4),
                                                 guidance_embeds=True)
    pipe = HunyuanVideoPipeline(text_encoder=llama, tokenizer=tokenizer(), transformer=transformer, vae=vae,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip,
                                tokenizer_2=tokenizer())
    pipe.save_pretrained(path)
    return pipe


def test_saved_hunyuan_pipeline_loads_through_the_config_and_forwards_as_diffusers(tmp_path):
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone
    from kvlock.backbones.hunyuan import HunyuanBackbone

    pipe = save_tiny_hunyuan_pipeline(tmp_path / "hy-tiny")
    template = {"template": "{}", "crop_start": 0}
    cfg = OmegaConf.load(REPO / "conf" / "model" / "hunyuan_video.yaml")
    cfg.update({"path": str(tmp_path / "hy-tiny"), "device": "cpu", "dtype": "float32", "max_sequence_length": 8,
                "local_files_only": True, "prompt_template": template})
    backbone = build_backbone(cfg)
    assert isinstance(backbone, HunyuanBackbone) and backbone.embedded_guidance == 6.0

    frames = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    z = backbone.encode_video(frames)
    x = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        mu = pipe.vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(z, mu * pipe.vae.config.scaling_factor, atol=1e-5, rtol=1e-5)

    prompts = ["a red square", "a blue circle a red square"]  # different lengths: padding is masked
    ctx = backbone.encode_prompt(prompts)
    embeds, pooled, mask = pipe.encode_prompt(prompts, prompt_template=template, max_sequence_length=8)
    assert not mask.bool().all()
    t = torch.tensor([0.4, 0.9])
    zz = torch.cat([z, -z])
    with torch.no_grad():
        reference = pipe.transformer(zz, timestep=t * 1000, encoder_hidden_states=embeds, encoder_attention_mask=mask,
                                     pooled_projections=pooled, guidance=torch.full((2,), 6000.0),
                                     return_dict=False)[0]
    torch.testing.assert_close(backbone.velocity(zz, t, ctx), reference, atol=1e-5, rtol=1e-5)
    fg = torch.zeros(backbone.geometry.num_tokens(9, 32, 32), dtype=torch.bool)
    fg[:2] = True
    controller = RecordingController(fg)
    backbone.install_kv_control(controller)
    try:
        torch.testing.assert_close(backbone.velocity(zz, t, ctx), reference, atol=1e-5, rtol=1e-5)
    finally:
        backbone.remove_kv_control()
    assert backbone.decode_latents(z).shape == frames.shape
