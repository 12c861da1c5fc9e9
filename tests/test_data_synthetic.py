"""The synthetic dataset: exact masks, true edits, determinism, and the config entry point."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from kvlock.data import EditSample, iter_dataset, make_synthetic_edits
from kvlock.data.synthetic import (
    COLORS,
    SHAPES,
    SYNTHETIC_EDIT_TYPES,
    Background,
    Scene,
    SceneObject,
    render_scene,
    sample_scene,
    scene_prompt,
)


def test_mask_is_exactly_the_object_pixels():
    circle = SceneObject("circle", "red", 0.2, start=(0.3, 0.5), end=(0.7, 0.5))
    scene = Scene(Background("stripes", ("blue", "white"), 0.3, 90.0, (0.5, 0.0)), (circle,))
    frames, mask = render_scene(scene, num_frames=5, height=40, width=56)
    assert frames.shape == (5, 40, 56, 3) and mask.shape == (5, 40, 56)
    assert (mask == (frames == COLORS["red"]).all(-1)).all()
    centroids_x = [np.nonzero(m)[1].mean() for m in mask]
    assert np.all(np.diff(centroids_x) > 0)  # moving right
    assert (
        scene_prompt(scene) == "a red circle moving right over a blue and white striped background"
    )


@pytest.mark.parametrize("size", [(32, 32), (48, 80)])
def test_every_shape_renders_inside_the_frame(size):
    height, width = size
    for shape in SHAPES:
        obj = SceneObject(shape, "yellow", 0.2, start=(0.25, 0.25), end=(0.75, 0.75))
        scene = Scene(Background("checker", ("black", "green"), 0.25, 0.0, (0.0, 1.0)), (obj,))
        _, mask = render_scene(scene, 3, height, width)
        assert mask.any(axis=(1, 2)).all(), shape
        assert not mask[:, 0].any() and not mask[:, -1].any() and not mask[:, :, 0].any()


def test_same_seed_same_edits_other_seed_other_edits():
    first = make_synthetic_edits(2, 9, 32, 32, seed=3)
    again = make_synthetic_edits(2, 9, 32, 32, seed=3)
    other = make_synthetic_edits(2, 9, 32, 32, seed=4)
    assert len(first) == 8 and all(isinstance(s, EditSample) for s in first)
    for a, b in zip(first, again):
        assert a.edit_id == b.edit_id and a.target_prompt == b.target_prompt
        assert (a.frames == b.frames).all() and (a.mask == b.mask).all()
        assert (a.target_frames == b.target_frames).all()
    assert not any(np.array_equal(a.frames, b.frames) for a, b in zip(first, other))


def test_scenes_vary_across_draws():
    prompts = {scene_prompt(sample_scene(np.random.default_rng(i))) for i in range(20)}
    assert len(prompts) == 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_differs_from_source_only_inside_mask(seed):
    samples = make_synthetic_edits(3, 9, 48, 64, seed=seed)
    assert {s.edit_type for s in samples} == set(SYNTHETIC_EDIT_TYPES)
    for sample in samples:
        changed = (sample.frames != sample.target_frames).any(-1)
        assert not (changed & ~sample.mask).any(), sample.edit_id
        assert changed.any(), sample.edit_id
        assert 0 < sample.mask.mean() < 0.5
        assert sample.source_prompt != sample.target_prompt
        assert sample.video_id in sample.edit_id


def test_edits_of_one_video_share_the_source():
    removal, insertion = make_synthetic_edits(
        1, 5, 32, 32, seed=0, edit_types=["removal", "insertion"]
    )
    assert removal.video_id == insertion.video_id
    assert (removal.frames == insertion.frames).all()
    assert removal.edit_type == "removal" and insertion.edit_type == "insertion"
    assert (
        len(insertion.meta["target_scene"]["objects"])
        == len(insertion.meta["scene"]["objects"]) + 1
    )


def test_unknown_synthetic_edit_type():
    with pytest.raises(ValueError, match="Unknown synthetic edit type"):
        make_synthetic_edits(1, 5, 32, 32, seed=0, edit_types=["teleport"])


def test_default_config_yields_prepared_clips():
    from kvlock.backbones.geometry import FrameRules

    cfg = OmegaConf.load("conf/dataset/synthetic.yaml")
    samples = list(iter_dataset(cfg, FrameRules(temporal_factor=4, size_multiple=16)))
    assert len(samples) == 8
    for sample in samples:
        assert sample.frames.shape == sample.target_frames.shape == (17, 64, 64, 3)
        assert sample.meta["prepare"]["crop_box"] == [0, 0, 64, 64]
