"""The paper-table columns VBench MS/AQ/IQ, HPS, AS, IR: reference formulas by hand, random-weight
runs, n/c reasons, and the reference deviations fixed (TorchScript CLIP, brackets, SC/BC)."""

from __future__ import annotations

import json
import math

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from conftest import REPO
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from kvlock.metrics import MetricInputs, MetricSettings, build_metrics, evaluate
from kvlock.metrics.clip_model import is_torchscript, load_clip
from kvlock.metrics.vbench_iq import vbench_iq_pixels
from kvlock.metrics.vbench_ms import motion_smoothness
from kvlock.report.collect import _weighted_mean

NEW = ["vbench_ms", "vbench_aq", "vbench_iq", "hpsv2", "laion_aes", "image_reward"]


@pytest.fixture(scope="module")
def clip_inputs():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    mask = np.zeros((3, 64, 80), bool)
    mask[:, 16:48, 20:60] = True
    edited = source.copy()
    edited[mask] = 255 - edited[mask]
    return MetricInputs(source, edited, mask, "a [cat]", "a [dog]")


def random_cfg(tmp_path, **extra):
    return {
        "names": NEW, "allow_random_weights": True, "offline": True, "device": "cpu",
        "weights_dir": str(tmp_path), "clip_model": "ViT-B-32", "batch_size": 8,
        "options": {"vbench_aq": {"model": "ViT-B-32"}, "laion_aes": {"model": "ViT-B-32"},
                    "hpsv2": {"model": "ViT-B-32"}},
        **extra,
    }


def test_random_weights_give_every_column(clip_inputs, tmp_path):
    row = evaluate(clip_inputs, build_metrics(random_cfg(tmp_path)))
    for name in NEW[1:-1]:
        assert math.isfinite(row[name]), name
    reasons = json.loads(row["metrics_not_computed"])
    assert set(reasons) <= {"vbench_ms", "image_reward"}
    assert "under 128 px" in reasons["vbench_ms"]  # 64x80 frames: AMT-S is scored on >= 128 px
    if "image_reward" in reasons:
        assert "pip install -e '.[rewards]'" in reasons["image_reward"]
    models = json.loads(row["metrics_models"])
    assert models["vbench_ms"] == "AMT-S (random init, seed 0)"
    assert "random init" in models["vbench_iq"]


def test_offline_without_weights_names_fetch_command(clip_inputs, tmp_path):
    cfg = random_cfg(tmp_path, allow_random_weights=False)
    cfg["names"] = ["vbench_ms", "vbench_aq", "vbench_iq", "hpsv2", "laion_aes"]
    reasons = json.loads(evaluate(clip_inputs, build_metrics(cfg))["metrics_not_computed"])
    assert "python -m kvlock.weights fetch amt-s" in reasons["vbench_ms"]
    assert "python -m kvlock.weights fetch musiq-spaq" in reasons["vbench_iq"]
    assert "python -m kvlock.weights fetch hps-v2.1" in reasons["hpsv2"]
    assert set(reasons) == set(cfg["names"])


def test_motion_smoothness_matches_vbench_formula():
    """Exact-valued predictions (the previous frame); tests/test_amt_s.py checks truncation."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (7, 8, 10, 3), dtype=np.uint8)
    got = motion_smoothness(frames, lambda a, b: a, "cpu", 2)  # "interpolate" = previous frame
    # VBench: predictions at odd frames 1, 3, 5 from the even neighbours; mean |diff| per frame
    diffs = []
    for odd in (1, 3, 5):
        pred = frames[odd - 1].astype(float)
        diffs.append(np.abs(pred - frames[odd].astype(float)).mean())
    assert got.numpy() == pytest.approx((255 - np.array(diffs)) / 255, abs=1e-6)
    assert float(got.mean()) == pytest.approx((255 - np.mean(diffs)) / 255, abs=1e-6)


def test_imaging_quality_resize_rule():
    big = np.zeros((2, 600, 1000, 3), np.uint8)
    assert vbench_iq_pixels(big).shape == (2, 3, 307, 512)  # int(600 * 512 / 1000)
    small = np.full((1, 100, 200, 3), 255, np.uint8)
    pixels = vbench_iq_pixels(small)
    assert pixels.shape == (1, 3, 100, 200) and float(pixels.max()) == 1.0


def test_brackets_stripped_unless_disabled():
    assert MetricSettings().prompt("a [red] car") == "a red car"
    assert MetricSettings(strip_brackets=False).prompt("a [red] car") == "a [red] car"


def test_sc_bc_weighted_by_frame_pairs():
    ok = pd.DataFrame({"label": ["m", "m", "m"], "vbench_sc": [0.9, 0.5, np.nan],
                       "vbench_sc_pairs": [9, 1, 50]})
    assert float(_weighted_mean(ok, "vbench_sc", "vbench_sc_pairs")["m"]) == pytest.approx(0.86)


def test_openai_torchscript_clip_file_loads(tmp_path):
    torch.manual_seed(0)
    model = CLIP(32, CLIPVisionCfg(layers=1, width=64, patch_size=32, image_size=64,
                                   head_width=64),
                 CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
                 quick_gelu=True).eval()
    model.half().float()  # OpenAI releases are fp16
    model.output_dict = False
    model.attn_mask = model._buffers.pop("attn_mask")  # OpenAI archives hold no mask buffer
    image, text = torch.rand(1, 3, 64, 64), open_clip.get_tokenizer("ViT-B-32")(["a cat"])
    torch.jit.trace(model, (image, text), check_trace=False).save(tmp_path / "ViT-B-32.pt")
    assert is_torchscript(tmp_path / "ViT-B-32.pt")
    loaded = load_clip("ViT-B-32", "openai", allow_random=False, seed=0, offline=True,
                       weights_dir=str(tmp_path), device=torch.device("cpu"), batch_size=4)
    assert not loaded.loaded.random_weights
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_image(image), dim=-1)
    assert torch.allclose(loaded.encode_pixels(image), expected, atol=1e-3)


def test_mask_threshold_is_the_protocols(tmp_path):
    """FiVE (conf/metrics/five.yaml) binarises JPEG masks with > 0; the default keeps > 127."""
    from PIL import Image

    from benchmarks.evaluate import load_inputs, metrics_config, parse_args

    for folder in ("src", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "src" / f"{i:05d}.png")
        Image.fromarray(np.full((16, 16), 60, np.uint8)).save(tmp_path / "masks" / f"{i:05d}.png")
    common = ["--source", str(tmp_path / "src"), "--edited", str(tmp_path / "src"),
              "--mask", str(tmp_path / "masks")]
    for name, expected in (("default", False), ("five", True)):
        config = str(REPO / "conf" / "metrics" / f"{name}.yaml")
        args = parse_args([*common, "--config", config])
        cfg = metrics_config(args)
        assert load_inputs(args, cfg["mask_threshold"]).mask.all() == expected
    assert cfg["frame_stride"] == 8 and len(build_metrics(cfg)) == len(cfg["names"])


def test_aesthetic_heads_load_the_reference_files_and_formulas(clip_inputs, tmp_path):
    """Head files in the references' formats (LAION linear: weight/bias; improved predictor:
    layers.0/2/4/6/7) are found in the torch hub cache; AQ = mean(head(CLIP)) / 10, AS = mean."""
    from kvlock.metrics.clip_model import clip_for
    from kvlock.metrics.vbench_bc import vbench_clip_pixels

    torch.manual_seed(3)
    (tmp_path / "checkpoints").mkdir()
    linear = {"weight": torch.randn(1, 512), "bias": torch.randn(1)}
    torch.save(linear, tmp_path / "checkpoints" / "sa_0_4_vit_l_14_linear.pth")
    sizes = [(512, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    mlp = {}
    for index, (d_in, d_out) in zip((0, 2, 4, 6, 7), sizes):
        mlp[f"layers.{index}.weight"] = torch.randn(d_out, d_in) / d_in**0.5
        mlp[f"layers.{index}.bias"] = torch.randn(d_out)
    torch.save(mlp, tmp_path / "checkpoints" / "sac+logos+ava1-l14-linearMSE.pth")
    cfg = random_cfg(tmp_path, names=["vbench_aq", "laion_aes"])
    aq, aes = build_metrics(cfg)
    got_aq, got_aes = aq.compute(clip_inputs), aes.compute(clip_inputs)
    assert "head (random" not in got_aq.model and "head (random" not in got_aes.model
    clip = clip_for(aq.settings, "ViT-B-32", "openai")
    features = clip.encode_pixels(vbench_clip_pixels(clip_inputs.edited, clip.image_size))
    assert got_aq.value == pytest.approx(
        float(((features @ linear["weight"].T + linear["bias"]) / 10).mean()), rel=1e-5)
    x = clip.encode_frames(clip_inputs.edited)
    for index in (0, 2, 4, 6, 7):
        x = x @ mlp[f"layers.{index}.weight"].T + mlp[f"layers.{index}.bias"]
    assert got_aes.value == pytest.approx(float(x.mean()), rel=1e-5)


def test_imaging_quality_with_a_checkpoint_matches_vbench_procedure(tmp_path):
    """A MUSIQ-SPAQ file in pyiqa's cache folder is loaded (no random weights); the value equals
    VBench's loop: pyiqa MUSIQ on each frame / 255, mean over frames, / 100."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(5)
    reference = MUSIQ(num_class=1, pretrained=False)
    (tmp_path / "pyiqa").mkdir()
    checkpoint = tmp_path / "pyiqa" / "musiq_spaq_ckpt-358bb6af.pth"
    torch.save(reference.state_dict(), checkpoint)
    reference.eval()
    frames = np.random.default_rng(2).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    inputs = MetricInputs(frames, frames, np.zeros((2, 48, 64), bool))
    (metric,) = build_metrics({"names": ["vbench_iq"], "offline": True, "device": "cpu",
                               "weights_dir": str(tmp_path)})
    result = metric.compute(inputs)
    assert not result.random_weights and result.reason is None
    with torch.no_grad():
        by_hand = [float(reference(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255))
                   for f in frames]
    assert result.value == pytest.approx(np.mean(by_hand) / 100, rel=1e-5)
