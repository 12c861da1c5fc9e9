"""The trained toy backbone (kvlock/assets/wan_toy.safetensors) and the synthetic-world oracle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "kvlock" / "assets" / "wan_toy.safetensors"
# Held-out prompts 0..NUM_PROMPTS-1 of the card's evaluation, same sampler settings: the oracle's
# colour / shape hits measured there (kvlock/assets/wan_toy.md). Two-sided, one prompt of
# tolerance: new weights must come with a new card and new numbers here.
NUM_PROMPTS = 8
EXPECTED_HITS = {"color_acc": 8, "shape_acc": 2}


@pytest.fixture(scope="module")
def toy_backbone():
    from kvlock.backbones import build_backbone

    if not WEIGHTS.is_file():
        pytest.fail(f"{WEIGHTS} is missing (train it: see kvlock/assets/wan_toy.md)")
    return build_backbone(OmegaConf.load(REPO / "conf" / "model" / "wan_toy.yaml"))


def test_weights_round_trip(toy_backbone):
    from safetensors.torch import load_file

    state = load_file(str(WEIGHTS))
    assert WEIGHTS.stat().st_size <= 20 * 2**20
    assert toy_backbone.info["weights"].endswith("wan_toy.safetensors")
    for name, param in toy_backbone.transformer.state_dict().items():
        torch.testing.assert_close(param, state[f"transformer.{name}"], rtol=0, atol=0)
    for name, param in toy_backbone.prompt_encoder.encoder.state_dict().items():
        torch.testing.assert_close(param, state[f"text_encoder.{name}"], rtol=0, atol=0)


def test_oracle_on_ground_truth():
    from kvlock.oracle import rendered_accuracy

    result = rendered_accuracy(num=100, seed=3, num_frames=5, height=32, width=32)
    assert result["color_acc"] >= 0.99 and result["shape_acc"] >= 0.99, result


def test_oracle_rejects_noise():
    from kvlock.oracle import classify

    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    blank = np.full((5, 32, 32, 3), 245, dtype=np.uint8)
    assert classify(blank)["color"] is None and classify(blank)["shape"] is None
    assert classify(frames)["color"] is not None  # noise is classified, not crashed on


def test_generation_matches_card(toy_backbone):
    from kvlock.oracle import score_generations
    from kvlock.training.data import make_batch
    from kvlock.training.evaluation import generate

    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    d, s = cfg.data, cfg.sample
    _, prompts, scenes, _ = make_batch(toy_backbone.codec, d, d.eval_seed, range(NUM_PROMPTS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~10x faster than 2 threads on a loaded 2-core machine
    try:
        videos = generate(toy_backbone, prompts, (d.num_frames, d.height, d.width), s.steps,
                          s.shift, s.cfg_scale, cfg.seed)
    finally:
        torch.set_num_threads(threads)
    assert videos.shape == (NUM_PROMPTS, d.num_frames, d.height, d.width, 3)
    result = score_generations(videos, [sc.objects[0] for sc in scenes])
    for key, hits in EXPECTED_HITS.items():
        assert abs(round(result[key] * NUM_PROMPTS) - hits) <= 1, result


def test_hard_lock_with_the_toy_model_keeps_background_exact_and_edits_the_region(toy_backbone):
    from kvlock.data.synthetic import make_synthetic_edits
    from kvlock.engine.config import EditConfig
    from kvlock.engine.editor import run_edit
    from kvlock.engine.token_mask import token_mask, tokens_to_pixels

    sample = make_synthetic_edits(1, 5, 32, 32, seed=0, edit_types=["color_change"], max_objects=1)[0]
    out = run_edit(toy_backbone, sample, EditConfig(steps=10, compose="every_step"), seed=0)
    geometry = toy_backbone.geometry
    bg = ~tokens_to_pixels(token_mask(sample.mask, geometry, 0), geometry, sample.num_frames)
    diff = np.abs(out.frames.astype(int) - sample.frames.astype(int))
    assert bg.any() and diff[bg].max() == 0
    assert diff[~bg].max() > 0


def tiny_train_cfg(out_dir, **overrides):
    """conf/train/toy.yaml on the random wan_tiny architecture: a few steps, tiny evaluations."""
    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    base = {"model_config": "conf/model/wan_tiny.yaml", "out_dir": str(out_dir), "train.max_steps": 4,
            "train.batch_size": 2, "train.log_every": 1, "train.sample_every": 1000, "train.eval_every": 2,
            "eval.num_prompts": 2, "eval.quick_prompts": 2, "eval.batch_size": 2, "sample.steps": 2}
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in {**base, **overrides}.items()]))


@pytest.mark.parametrize("paired_shapes", [False, True])
def test_training_resumes_exactly_where_it_stopped(tmp_path, paired_shapes):
    from safetensors.torch import load_file

    from kvlock.training.loop import train

    mode = {"train.paired_shapes": paired_shapes}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = train(tiny_train_cfg(tmp_path / "whole", **mode))
        train(tiny_train_cfg(tmp_path / "half", **{"train.max_steps": 2}, **mode))
        resumed = train(tiny_train_cfg(tmp_path / "resumed", resume=str(tmp_path / "half" / "checkpoint.pt"), **mode))
    finally:
        torch.set_num_threads(threads)
    assert whole["steps"] == resumed["steps"] == 4
    assert [r["loss"] for r in whole["loss_curve"]] == [r["loss"] for r in resumed["loss_curve"]]
    a, b = (load_file(str(tmp_path / d / "wan_toy.safetensors")) for d in ("whole", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(whole["quick_evals"]) == 2 and 0.0 <= whole["eval"]["color_acc"] <= 1.0
    for name in ("summary.json", "loss.png", "samples_final.png", "eval_samples.png", "train.log.jsonl"):
        assert (tmp_path / "whole" / name).is_file(), name


def test_flow_loss_spaces_and_object_weights():
    from kvlock.backbones.prediction import sample_to_velocity
    from kvlock.training.objective import flow_loss

    g = torch.Generator().manual_seed(0)
    z0, eps, out = (torch.randn(3, 4, 2, 2, 2, generator=g) for _ in range(3))
    t = torch.tensor([0.02, 0.5, 0.9])
    tb = t.view(-1, 1, 1, 1, 1)
    x_t = (1 - tb) * z0 + tb * eps
    mse = torch.nn.functional.mse_loss
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "sample", "sample"), mse(out, z0))
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "velocity", "velocity"), mse(out, eps - z0))
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "velocity", "sample"), mse(x_t - tb * out, z0))
    jit = mse(sample_to_velocity(out, x_t, t), sample_to_velocity(z0, x_t, t))  # t = 0.02 clamped to T_MIN
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "sample", "velocity"), jit)
    ones = torch.ones_like(z0)
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "sample", "sample", ones), mse(out, z0))
    only_first = torch.zeros_like(z0)
    only_first[0] = 1.0
    torch.testing.assert_close(flow_loss(out, z0, eps, x_t, t, "sample", "sample", only_first), mse(out[0], z0[0]))
    with pytest.raises(ValueError, match="Unknown train.loss 'eps'"):
        flow_loss(out, z0, eps, x_t, t, "sample", "eps")


def test_the_toy_model_uses_its_prompt(toy_backbone):
    from kvlock.training.evaluation import prompt_gap

    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    cfg.eval.num_prompts = 16
    gap = prompt_gap(toy_backbone, cfg)
    assert gap["own"] < 0.8 * gap["rotated"], gap  # card: 0.228 vs 0.469 on 64 clips
    # which colour is the object's is read from the word order, not a bag of words (card: 0.228 vs 0.301)
    assert gap["own"] < 0.9 * gap["colour_roles"], gap


def test_frame_error_grows_with_noise_for_every_frame(toy_backbone):
    from kvlock.training.evaluation import frame_error

    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    cfg.eval.num_prompts = 4
    errors = frame_error(toy_backbone, cfg, times=(0.1, 0.7))
    assert list(errors) == ["0.1", "0.7"] and all(len(e) == cfg.data.num_frames for e in errors.values())
    assert all(0 <= lo < hi for lo, hi in zip(errors["0.1"], errors["0.7"])), errors


def test_training_times_keep_a_uniform_share_of_low_noise():
    from kvlock.training.objective import sample_t

    def draw(share):
        return sample_t(20_000, "logit_normal", torch.Generator().manual_seed(0), 1.0, 1.0, share)

    plain, mixed = draw(0.0), draw(0.5)
    assert torch.equal(plain, sample_t(20_000, "logit_normal", torch.Generator().manual_seed(0), 1.0, 1.0))
    low = {name: float((t < 0.3).float().mean()) for name, t in (("plain", plain), ("mixed", mixed))}
    assert low["plain"] < 0.06 and 0.14 < low["mixed"] < 0.20, low  # 3 % vs 3 % / 2 + 30 % / 2
    assert ((mixed > 0) & (mixed < 1)).all()
    with pytest.raises(ValueError, match="Unknown t_sampling 'beta'"):
        sample_t(4, "beta", torch.Generator())


def test_shape_bands_cover_where_shapes_differ_inside_and_outside_the_object():
    from kvlock.backbones.codec import SpaceToDepthCodec
    from kvlock.training.data import make_batch, shape_bands

    codec = SpaceToDepthCodec(temporal_factor=4, spatial_factor=2)
    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    _, _, scenes, objects = make_batch(codec, cfg.data, 1000, range(8))
    bands = shape_bands(codec, scenes, (cfg.data.num_frames, cfg.data.height, cfg.data.width))
    assert bands.shape == objects.shape and set(bands.unique().tolist()) <= {0.0, 1.0}
    inside, outside = (bands * objects).sum((1, 2, 3, 4)), (bands * (1 - objects)).sum((1, 2, 3, 4))
    assert (inside > 0).all() and (outside > 0).all()  # no pull toward larger or smaller objects only
    assert ((1 - bands) * objects).sum((1, 2, 3, 4)).gt(0).all()  # the core all shapes share is not in it


def test_object_scale_enlarges_objects_and_keeps_them_inside_the_frame():
    from kvlock.data.synthetic import render_scene, sample_scene
    from kvlock.training.data import enlarge

    for i in range(50):
        scene = sample_scene(np.random.default_rng([1000, i]), max_objects=1)
        big = enlarge(scene, 2.0)
        assert enlarge(scene, 1.0) == scene and big.background == scene.background
        obj = big.objects[0]
        assert obj.size == pytest.approx(2 * scene.objects[0].size) and obj.shape == scene.objects[0].shape
        assert all(obj.size - 1e-9 <= c <= 1 - obj.size + 1e-9 for c in (*obj.start, *obj.end))
        small_px, big_px = (render_scene(s, 5, 32, 32)[1].sum((1, 2)) for s in (scene, big))
        assert (big_px > 3 * small_px).all()
    with pytest.raises(ValueError, match="object_scale"):
        enlarge(scene, 5.0)


def test_shape_pairs_differ_only_in_the_shape_and_its_word():
    from kvlock.data.synthetic import SHAPES, scene_prompt
    from kvlock.training.data import draw_scenes, shape_pairs

    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    scenes = draw_scenes(cfg.data, 1000, range(16))
    seen = set()
    for offset in range(4):
        pairs = shape_pairs(scenes, offset)
        assert len(pairs) == 16 and pairs[:8] == scenes[:8]
        for first, second in zip(pairs[:8], pairs[8:]):
            a, b = first.objects[0], second.objects[0]
            assert b.shape != a.shape and b.shape in SHAPES and replace(b, shape=a.shape) == a
            assert second.background == first.background
            assert scene_prompt(second) == scene_prompt(first).replace(f" {a.shape} ", f" {b.shape} ")
            seen.add((a.shape, b.shape))
    assert len({b for a, b in seen if a == scenes[0].objects[0].shape}) == len(SHAPES) - 1  # every other shape


def test_a_deeper_model_warm_started_from_a_shallower_one_starts_with_the_same_output(tmp_path):
    from kvlock.backbones import build_backbone
    from kvlock.backbones.wan import load_weights
    from kvlock.training.model import identity_blocks, save_weights

    cfg = OmegaConf.load(REPO / "conf" / "model" / "wan_tiny.yaml")
    shallow = build_backbone(cfg)
    save_weights(shallow, tmp_path / "shallow.safetensors")
    deep = build_backbone(OmegaConf.merge(cfg, {"seed": 1, "transformer": {"num_layers": 3}}))
    missing = load_weights(tmp_path / "shallow.safetensors", allow_missing=True, transformer=deep.transformer,
                           text_encoder=deep.prompt_encoder.encoder)
    x = torch.randn(1, 48, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(1))

    def out(backbone):
        with torch.no_grad():
            return backbone.transformer(x, timestep=torch.tensor([500.0]), encoder_hidden_states=context,
                                        return_dict=False)[0]

    assert not torch.allclose(out(deep), out(shallow))  # block 2 is random: the output moved
    assert identity_blocks(deep.transformer, missing) == [2]
    torch.testing.assert_close(out(deep), out(shallow))


def test_warm_start_across_codecs_keeps_what_fits_and_reinitialises_the_rest(tmp_path):
    from kvlock.backbones import build_backbone
    from kvlock.backbones.wan import load_weights
    from kvlock.training.model import save_weights

    cfg = OmegaConf.load(REPO / "conf" / "model" / "wan_tiny.yaml")
    packed = build_backbone(cfg)  # 4 frames per latent frame: 48 channels
    save_weights(packed, tmp_path / "packed.safetensors")
    per_frame = build_backbone(OmegaConf.merge(cfg, {"seed": 1, "codec": {"temporal_factor": 1}}))
    fresh = per_frame.transformer.patch_embedding.weight.clone()
    missing = load_weights(tmp_path / "packed.safetensors", allow_missing=True,
                           transformer=per_frame.transformer, text_encoder=per_frame.prompt_encoder.encoder)
    # the channel count changes the patch embedding's input and the projection's output
    assert sorted(missing) == ["transformer.patch_embedding.weight", "transformer.proj_out.bias",
                               "transformer.proj_out.weight"]
    assert torch.equal(per_frame.transformer.patch_embedding.weight, fresh)
    for name in ("blocks.0.attn1.to_q.weight", "patch_embedding.bias"):
        torch.testing.assert_close(per_frame.transformer.get_parameter(name), packed.transformer.get_parameter(name))
