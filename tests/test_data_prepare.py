"""prepare_sample: frame counts the backbone accepts, aligned resize/crop, recorded in meta."""

from __future__ import annotations

import numpy as np
import pytest

from kvlock.backbones.geometry import FrameRules
from kvlock.data import DataError, EditSample, PrepareConfig, prepare_sample

RULES = FrameRules(temporal_factor=4, size_multiple=16)
RED, BLUE = (255, 0, 0), (0, 0, 255)


def box_sample(num_frames: int = 24, height: int = 240, width: int = 428) -> EditSample:
    """A red box moving right over blue; the mask is exactly the red pixels. Frame t holds value t
    in its top-left pixel's green channel so the kept frames can be read back."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[...] = BLUE
    mask = np.zeros((num_frames, height, width), dtype=bool)
    for t in range(num_frames):
        left = width // 4 + 2 * t
        mask[t, height // 3 : 2 * height // 3, left : left + width // 5] = True
    frames[mask] = RED
    frames[:, 0, 0, 1] = np.arange(num_frames)
    meta = {"video_path": "clips/box", "mask_path": "clips/box_masks"}
    return EditSample(
        "box", "box", frames, mask, "a red box", "a green box", "color_change", frames.copy(), meta
    )


@pytest.mark.parametrize(
    ("num_frames", "options", "kept"),
    [
        (24, {}, 21),
        (24, {"max_frames": 17}, 17),
        (24, {"max_frames": 16}, 13),
        (24, {"frame_stride": 2}, 9),
        (5, {}, 5),
    ],
)
def test_frame_count_is_4k_plus_1(num_frames, options, kept):
    out = prepare_sample(box_sample(num_frames, 32, 48), RULES, options)
    stride = options.get("frame_stride", 1)
    assert (
        out.num_frames == kept and out.mask.shape[0] == kept and out.target_frames.shape[0] == kept
    )
    assert out.frames[:, 0, 0, 1].tolist() == list(range(0, stride * kept, stride))
    record = out.meta["prepare"]
    assert (
        record["frames_kept"] == kept
        and record["original_frames"] == num_frames
        and record["frame_stride"] == stride
    )


def test_too_few_frames_names_the_video():
    with pytest.raises(DataError) as info:
        prepare_sample(box_sample(8, 32, 48), RULES, frame_stride=2)
    assert (
        str(info.value)
        == "clips/box: frame count 4 after stride 2 too short for the backbone (needs 4k+1 ≥ 5)"
    )


def test_resize_crop_keeps_mask_aligned_with_frames():
    sample = box_sample()
    out = prepare_sample(sample, RULES, {"max_frames": 17, "height": 64, "width": 112})
    assert (
        out.frames.shape == (17, 64, 112, 3)
        and out.mask.shape == (17, 64, 112)
        and out.mask.dtype == bool
    )
    red = np.abs(out.frames.astype(int) - RED).sum(-1) < 100
    assert (red == out.mask).mean() > 0.99
    assert np.array_equal(out.frames, out.target_frames)
    record = out.meta["prepare"]
    assert record["original_size"] == [240, 428] and record["resized_size"] == [64, 114]
    assert record["size"] == [64, 112] and record["crop_box"] == [0, 1, 64, 113]
    assert record["mask_fraction"] == pytest.approx(sample.mask[:17].mean(), rel=0.05)
    assert sample.frames.shape == (24, 240, 428, 3)  # the input is left alone


def test_sizes_floor_to_the_size_multiple():
    out = prepare_sample(box_sample(5, 50, 70), RULES)
    assert out.size == (48, 64) and out.meta["prepare"]["crop_box"] == [1, 3, 49, 67]
    assert np.array_equal(out.frames, box_sample(5, 50, 70).frames[:, 1:49, 3:67])


def test_resize_mode_stretches():
    out = prepare_sample(box_sample(5, 60, 100), RULES, height=32, width=32, resize_mode="resize")
    assert out.size == (32, 32) and out.meta["prepare"]["crop_box"] == [0, 0, 32, 32]
    assert out.mask.mean() == pytest.approx(1 / 15, rel=0.15)  # the box keeps its share (1/3 x 1/5)
    assert 5 <= out.mask[0, 16].sum() <= 8  # 1/5 of the width: 20 of 100 columns -> ~6.4 of 32


def test_crop_that_removes_the_mask_is_an_error():
    sample = box_sample(5, 32, 200)
    sample.mask[:] = False
    sample.mask[:, :, :10] = True  # only at the far left, cropped away below
    with pytest.raises(DataError, match="^clips/box_masks: empty mask"):
        prepare_sample(sample, RULES, width=64, height=32)


def test_mask_fraction_bounds():
    with pytest.raises(DataError, match="above max_mask_fraction 0.01"):
        prepare_sample(box_sample(5, 32, 48), RULES, max_mask_fraction=0.01)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_frame": 17}, "Unknown prepare option"),
        ({"resize_mode": "squash"}, "Unknown resize_mode 'squash'"),
        ({"max_frames": 3}, "below the backbone minimum 5"),
        ({"frame_stride": 0}, "must be >= 1"),
    ],
)
def test_bad_prepare_options(options, message):
    with pytest.raises(ValueError, match=message):
        prepare_sample(box_sample(5, 32, 48), RULES, options)


def test_config_object_and_overrides_combine():
    cfg = PrepareConfig(max_frames=9, height=32, width=32)
    out = prepare_sample(box_sample(24, 64, 64), RULES, cfg, max_frames=5)
    assert out.num_frames == 5 and out.size == (32, 32)
