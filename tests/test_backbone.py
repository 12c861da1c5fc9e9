"""Backbone adapter: geometry rules, lossless codec, and the real-checkpoint loading path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.sampler_check import save_tiny_pipeline
from kvlock.backbones.codec import SpaceToDepthCodec
from kvlock.backbones.geometry import LatentGeometry
from kvlock.backbones.wan import WanBackbone, load_wan_pretrained


def test_codec_round_trip_is_bit_exact_on_real_clip(real_clip):
    codec = SpaceToDepthCodec(temporal_factor=4, spatial_factor=2)
    latents = codec.encode(real_clip.frames)
    assert latents.shape == (1, 48, 5, 32, 56)
    assert np.array_equal(codec.decode(latents), real_clip.frames)


@pytest.mark.parametrize("tf,s", [(1, 1), (4, 4), (2, 2)])
def test_codec_round_trip_is_bit_exact_on_generated_data(tf, s):
    frames = np.random.default_rng(tf * 10 + s).integers(0, 256, (2 * tf + 1, 16, 24, 3), dtype=np.uint8)
    codec = SpaceToDepthCodec(tf, s)
    assert np.array_equal(codec.decode(codec.encode(frames)), frames)


def test_geometry_frame_rule_and_size_multiples():
    geo = LatentGeometry(temporal_factor=4, spatial_factor=8, patch_size=(1, 2, 2), latent_channels=16)
    assert geo.latent_shape(33, 480, 832) == (16, 9, 60, 104)
    assert geo.token_grid(33, 480, 832) == (9, 30, 52)
    assert geo.frame_rules.largest_valid_num_frames(24) == 21
    with pytest.raises(ValueError, match="4k\\+1"):
        geo.latent_shape(24, 480, 832)
    with pytest.raises(ValueError, match="multiple of 16"):
        geo.latent_shape(33, 480, 830)


def test_tiny_backbone_encodes_prompts_and_forwards(tiny_backbone, random_clip):
    z = tiny_backbone.encode_video(random_clip.frames)
    ctx = tiny_backbone.encode_prompt(["a red square", "a blue circle"])
    assert ctx.shape[:2] == (2, 32)
    assert not torch.equal(ctx[0], ctx[1])
    v = tiny_backbone.velocity(z, torch.tensor([0.5]), ctx[:1])
    assert v.shape == z.shape and torch.isfinite(v).all()


def test_word_tokenizer_maps_words_and_the_toy_vocabulary_covers_the_synthetic_world():
    from omegaconf import OmegaConf

    from kvlock.backbones.text import WordTokenizer
    from kvlock.data.synthetic import MAX_OBJECTS, make_synthetic_edits

    tok = WordTokenizer(["a", "red", "circle"])
    ids, mask = tok(["A red  circle!", "a green circle", "a a a a a a"], 6)
    assert ids.tolist()[:2] == [[3, 4, 5, 1, 0, 0], [3, 2, 5, 1, 0, 0]]  # green: unknown (2)
    assert ids[2].tolist() == [3, 3, 3, 3, 3, 1]  # truncated, end of sequence kept
    assert mask.sum(1).tolist() == [4, 4, 6]
    with pytest.raises(ValueError, match="twice"):
        WordTokenizer(["a", "A"])

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "wan_toy.yaml")
    toy = WordTokenizer(cfg.text.vocabulary)
    edits = make_synthetic_edits(40, 5, 32, 32, seed=11, max_objects=MAX_OBJECTS)
    prompts = [p for e in edits for p in (e.source_prompt, e.target_prompt)] + ["a square standing still"]
    ids, _ = toy(prompts, cfg.text.max_length)
    assert (ids != toy.unk_id).all()
    assert (ids == toy.eos_id).sum(1).eq(1).all()  # nothing truncated



def test_absolute_positions_start_as_the_plain_encoder_and_make_word_order_count():
    from kvlock.backbones.text import WordTokenizer
    from kvlock.backbones.wan import build_tiny_text_encoder

    cfg = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_heads": 2, "max_length": 8}
    tok = WordTokenizer(["a", "red", "white", "circle", "over"])
    torch.manual_seed(0)
    plain = build_tiny_text_encoder(cfg, tok)
    positional = build_tiny_text_encoder({**cfg, "absolute_positions": True}, tok)
    assert positional.load_state_dict(plain.state_dict(), strict=False).missing_keys == ["position_embedding.weight"]
    ids, mask = tok(["a red circle over a white", "a white circle over a red"], 8)
    with torch.no_grad():
        torch.testing.assert_close(positional(ids, mask).last_hidden_state, plain(ids, mask).last_hidden_state)
        positional.position_embedding.weight.normal_()
        moved = positional(ids, mask).last_hidden_state - plain(ids, mask).last_hidden_state
    assert moved[:, :7].abs().amax(-1).min() > 1e-3  # every token (and eos) now carries its position


def test_warm_start_into_a_grown_encoder_keeps_the_new_parameters_fresh(tmp_path):
    from safetensors.torch import save_file

    from kvlock.backbones.text import WordTokenizer
    from kvlock.backbones.wan import build_tiny_text_encoder, load_weights

    cfg = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_heads": 2, "max_length": 8}
    tok = WordTokenizer(["a", "red"])
    plain = build_tiny_text_encoder(cfg, tok)
    path = tmp_path / "plain.safetensors"
    save_file({f"text_encoder.{k}": v.clone() for k, v in plain.state_dict().items()}, str(path))
    grown = build_tiny_text_encoder({**cfg, "absolute_positions": True}, tok)
    with pytest.raises(RuntimeError, match="position_embedding"):
        load_weights(path, text_encoder=grown)
    assert load_weights(path, allow_missing=True, text_encoder=grown) == ["text_encoder.position_embedding.weight"]
    torch.testing.assert_close(grown.shared.weight, plain.shared.weight)
    assert not grown.position_embedding.weight.any()


def test_saved_tiny_pipeline_loads_back_through_the_checkpoint_path(tmp_path):
    pipe = save_tiny_pipeline(tmp_path / "wan-tiny")
    backbone = load_wan_pretrained({"name": "saved", "path": str(tmp_path / "wan-tiny"), "device": "cpu",
                                    "dtype": "float32", "max_sequence_length": 8, "local_files_only": True})
    assert isinstance(backbone, WanBackbone)
    assert backbone.geometry.frame_rules.temporal_factor == 4
    assert backbone.geometry.frame_rules.size_multiple == 16
    assert backbone.info["scheduler"]["shift"] == 3.0

    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    z = backbone.encode_video(frames)
    assert z.shape == (1, 4, 2, 4, 4)
    # Same output as the in-memory pipeline's modules: encode with normalisation, prompt, velocity.
    x = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    mu = pipe.vae.encode(x).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, 4, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(z, (mu - mean) / std, atol=1e-5, rtol=1e-5)
    ctx = backbone.encode_prompt(["a red square"])
    ref_ctx = pipe.encode_prompt("a red square", do_classifier_free_guidance=False, max_sequence_length=8)[0]
    torch.testing.assert_close(ctx, ref_ctx, atol=1e-5, rtol=1e-5)
    t = torch.tensor([0.4])
    ref_v = pipe.transformer(z, timestep=t * 1000, encoder_hidden_states=ref_ctx, return_dict=False)[0]
    torch.testing.assert_close(backbone.velocity(z, t, ctx), ref_v, atol=1e-5, rtol=1e-5)
    assert backbone.decode_latents(z).shape == frames.shape


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load Wan checkpoint"):
        load_wan_pretrained({"name": "x", "path": str(tmp_path / "nope"), "device": "cpu",
                             "local_files_only": True})


def test_tiny_backbone_in_bfloat16_keeps_diffusers_float32_modules_without_the_cast_warning():
    """The dtype is applied as `from_pretrained(torch_dtype=...)` would: the modules diffusers keeps
    in float32 stay float32, the rest is cast, and diffusers' "should be kept in float32" warning
    (printed by every job when the model was cast with `.to(dtype)`) does not arise."""
    import logging

    from diffusers.utils import logging as diffusers_logging
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    library_logger = diffusers_logging.get_logger("diffusers")
    library_logger.addHandler(handler)
    try:
        cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "model" / "wan_tiny.yaml")
        cfg.dtype = "bfloat16"
        backbone = build_backbone(cfg)
    finally:
        library_logger.removeHandler(handler)
    assert not [m for m in messages if "should be kept in float32" in m]
    keep = set(backbone.transformer._keep_in_fp32_modules)
    dtypes = {name: p.dtype for name, p in backbone.transformer.named_parameters()}
    kept = {n for n in dtypes if keep & set(n.split("."))}
    assert kept and {dtypes[n] for n in kept} == {torch.float32}
    assert {dtypes[n] for n in set(dtypes) - kept} == {torch.bfloat16}
    latents = backbone.encode_video(np.zeros((5, 32, 32, 3), np.uint8))
    velocity = backbone.velocity(latents, torch.ones(1), backbone.encode_prompt(["a red circle"]))
    assert velocity.shape == latents.shape and torch.isfinite(velocity.float()).all()
