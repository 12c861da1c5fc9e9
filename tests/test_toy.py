"""The trained toy backbone (kvlock/assets/wan_toy.safetensors) and the synthetic-world oracle."""

from __future__ import annotations

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
EXPECTED_HITS = {"color_acc": 1, "shape_acc": 4}


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
    from benchmarks.train_toy import generate, make_batch
    from kvlock.oracle import score_generations

    cfg = OmegaConf.load(REPO / "conf" / "train" / "toy.yaml")
    d, s = cfg.data, cfg.sample
    _, prompts, scenes = make_batch(toy_backbone.codec, d, d.eval_seed, range(NUM_PROMPTS))
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
