"""AMT-S (kvlock.metrics.amt_s) against VBench's vendored AMT-S, and VBench motion_smoothness.

tests/fixtures/amt_s_reference.json was written by running the reference
(Vchitect/VBench vbench/third_party/amt/networks/AMT-S.py `Model`, AMT-S.yaml settings, with
utils/utils.py `InputPadder`) once: the key -> shape manifest of its state dict (that of the
official `amt-s.pth`), and a strided sample plus channel means of its `imgt_pred` at t = 1/2 for
the seeded state dict and frames that `seeded_state` / `seeded_frames` below rebuild.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO

from kvlock.metrics import MetricInputs, build_metrics
from kvlock.metrics.amt_s import AMTS, load_amt_s
from kvlock.metrics.frames import unit_tensor
from kvlock.metrics.vbench_ms import amt_midframes, motion_smoothness

FIXTURE = json.loads((REPO / "tests" / "fixtures" / "amt_s_reference.json").read_text())


def seeded_state(seed: int) -> dict[str, torch.Tensor]:
    """N(0, 1) draws in manifest key order; weights x gain / sqrt(fan-in), 1-D tensors x 0.1."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in FIXTURE["state_dict_shapes"].items():
        draw = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 1:
            scale = FIXTURE["bias_scale"]
        else:
            scale = FIXTURE["weight_gain"] * float(np.prod(shape[1:])) ** -0.5
        state[key] = torch.from_numpy(draw * np.float32(scale))
    return state


def seeded_frames(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random texture and the same texture moved by (3, 5) px, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    frame0 = rng.integers(0, 256, (FIXTURE["height"], FIXTURE["width"], 3), dtype=np.uint8)
    return frame0, np.roll(frame0, (3, 5), axis=(0, 1))


@pytest.fixture(scope="module")
def seeded_model() -> AMTS:
    model = AMTS().eval()
    model.load_state_dict(seeded_state(FIXTURE["seed"]), strict=True)
    return model


def test_state_dict_keys_and_shapes_are_the_official_checkpoints():
    ours = {key: list(value.shape) for key, value in AMTS().state_dict().items()}
    assert ours == FIXTURE["state_dict_shapes"]
    assert len(ours) == 213


def test_output_equals_the_reference_network(seeded_model):
    """Odd frame size (120x136, padded to 128x144 and cropped back), t = 1/2."""
    torch.set_num_threads(1)
    frame0, frame1 = seeded_frames(FIXTURE["frames_seed"])
    with torch.no_grad():
        pred = amt_midframes(seeded_model, unit_tensor(frame0[None]), unit_tensor(frame1[None]))[0]
    assert pred.shape == (3, FIXTURE["height"], FIXTURE["width"])
    stride = FIXTURE["stride"]
    sample = pred[:, ::stride, ::stride].flatten()
    expected = torch.tensor(FIXTURE["imgt_pred_sample"])
    assert float((sample - expected).abs().max()) <= 1e-5
    means = pred.double().mean((1, 2))
    assert torch.allclose(means, torch.tensor(FIXTURE["imgt_pred_channel_mean"],
                                              dtype=torch.float64), atol=1e-5)


def vbench_score_by_hand(frames: np.ndarray, predict) -> float:
    """motion_smoothness.py `motion_score` step by step in numpy/cv2, for a `predict(f0, f1)` on
    (H, W, 3) float32 frames in [0, 1] (img2tensor), tensor2img truncating to uint8."""
    even = [f.astype(np.float32) / np.float32(255.0) for f in frames[0::2]]
    outputs = [frames[0]]
    for f0, f1 in zip(even[:-1], even[1:]):
        outputs += [(predict(f0, f1) * np.float32(255.0)).clip(0, 255).astype(np.uint8), None]
    interpolated, originals = outputs[1::2], frames[1::2]
    diffs = [np.mean(cv2.absdiff(originals[i], interpolated[i])) for i in range(len(interpolated))]
    return (255.0 - float(np.mean(diffs))) / 255.0


def test_motion_smoothness_score_matches_vbench_by_hand():
    """8 frames: odd frames 1, 3, 5 are predicted, 7 has no right neighbour; the average
    predictor gives x.5 values, which tensor2img truncates."""
    frames = np.random.default_rng(4).integers(0, 256, (8, 6, 10, 3), dtype=np.uint8)
    per_frame = motion_smoothness(frames, lambda a, b: (a + b) / 2, "cpu", batch_size=2)
    assert per_frame.shape == (3,)
    expected = vbench_score_by_hand(frames, lambda a, b: (a + b) / 2)
    assert float(per_frame.double().mean()) == pytest.approx(expected, abs=1e-9)
    rounded = (frames[0:6:2].astype(float) + frames[2:8:2]) / 2  # rounding would differ
    assert float(per_frame.double().mean()) != pytest.approx(
        (255 - np.abs(np.round(rounded) - frames[1:7:2]).mean()) / 255, abs=1e-9)


def clip_128(frames: int = 5) -> MetricInputs:
    """A texture moving 2 px per frame, 128 x 136 (the smallest size AMT-S gives a number)."""
    texture = np.random.default_rng(6).integers(0, 256, (128, 136, 3), dtype=np.uint8)
    video = np.stack([np.roll(texture, 2 * i, axis=1) for i in range(frames)])
    return MetricInputs(video, video, np.zeros(video.shape[:3], bool))


def put_in_hf_cache(weights_dir, payload) -> None:
    """Save `payload` where huggingface_hub's cache keeps lalala125/AMT amt-s.pth."""
    repo = weights_dir / "models--lalala125--AMT"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(payload, repo / "snapshots" / commit / "amt-s.pth")


def test_metric_loads_the_checkpoint_file_and_scores_as_vbench(tmp_path, seeded_model):
    state = seeded_state(FIXTURE["seed"])
    put_in_hf_cache(tmp_path, {"epoch": 300, "state_dict": state})  # the trainer's format
    inputs = clip_128()
    (metric,) = build_metrics({"names": ["vbench_ms"], "offline": True, "device": "cpu",
                               "weights_dir": str(tmp_path), "batch_size": 2})
    result = metric.compute(inputs)
    assert result.reason is None and not result.random_weights and result.model == "AMT-S"

    def predict(f0, f1):
        with torch.no_grad():
            out = amt_midframes(seeded_model, torch.from_numpy(f0).permute(2, 0, 1)[None],
                                torch.from_numpy(f1).permute(2, 0, 1)[None])
        return out[0].permute(1, 2, 0).numpy()

    assert result.value == pytest.approx(vbench_score_by_hand(inputs.edited, predict), abs=1e-6)


def test_random_weights_batch_size_and_small_frames(tmp_path):
    cfg = {"names": ["vbench_ms"], "allow_random_weights": True, "offline": True,
           "device": "cpu", "weights_dir": str(tmp_path), "seed": 3}
    inputs = clip_128()
    one = build_metrics({**cfg, "batch_size": 1})[0].compute(inputs)
    two = build_metrics({**cfg, "batch_size": 2})[0].compute(inputs)
    assert one.model == "AMT-S (random init, seed 3)" and one.random_weights
    assert len(one.per_frame) == 2 and 0 < one.value <= 1
    assert two.value == pytest.approx(one.value, abs=1e-4)
    small = inputs.edited[:, :112]
    tiny = build_metrics(cfg)[0].compute(MetricInputs(small, small, inputs.mask[:, :112]))
    assert np.isnan(tiny.value) and "under 128 px" in tiny.reason


def test_bad_checkpoint_names_the_file(tmp_path):
    state = seeded_state(0)
    state.pop("comb_block.0.weight")
    torch.save({"state_dict": state}, tmp_path / "amt-s.pth")
    with pytest.raises(ValueError, match="amt-s.pth: not an AMT-S state dict"):
        load_amt_s(tmp_path / "amt-s.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="cut.pth: cannot be read as a weights file"):
        load_amt_s(tmp_path / "cut.pth")
