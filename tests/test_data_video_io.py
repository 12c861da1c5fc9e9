"""Reading and writing clips: mp4 round trip, palette masks, ordering, content hashes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kvlock.data.errors import DataError
from kvlock.data.video_io import is_palette_mask, read_frames, read_masks, video_hash, write_mp4


def smooth_clip(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 gradients that move a little each frame (easy for H.264)."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    channels = [x * 255 / width, y * 255 / height, (x + y + 4 * t) % 256]
    return np.stack(channels, axis=-1).astype(np.uint8)


def test_mp4_round_trip(tmp_path):
    clip = smooth_clip(9, 32, 48)
    path = write_mp4(tmp_path / "out" / "clip.mp4", clip, fps=8)
    back = read_frames(path)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - clip).mean() < 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]  # no temp file left


def test_mp4_odd_size_is_padded_to_even(tmp_path):
    clip = smooth_clip(5, 31, 45)
    back = read_frames(write_mp4(tmp_path / "odd.mp4", clip))
    assert back.shape == (5, 32, 46, 3)
    assert np.abs(back[:, :31, :45].astype(int) - clip).mean() < 3


def test_mask_video_reads_as_gray(tmp_path):
    mask = np.zeros((5, 32, 48), dtype=np.uint8)
    mask[:, 8:24, 16:40] = 255
    raw = read_masks(write_mp4(tmp_path / "mask.mp4", mask))
    assert raw.shape == mask.shape
    assert ((raw > 127) == (mask > 127)).mean() > 0.99


def test_palette_masks_read_as_object_ids(tmp_path):
    ids = np.zeros((16, 16), dtype=np.uint8)
    ids[2:6, 2:6], ids[8:12, 8:12] = 1, 2
    for i in range(3):
        image = Image.fromarray(ids, mode="P")
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        image.save(tmp_path / f"{i}.png")
    raw = read_masks(tmp_path)
    assert is_palette_mask(tmp_path)
    assert raw.shape == (3, 16, 16) and set(np.unique(raw)) == {0, 1, 2}
    assert (raw[1] == ids).all()


def test_image_folder_in_natural_order(tmp_path):
    for index in (10, 2, 1):
        Image.fromarray(np.full((4, 4, 3), index, dtype=np.uint8)).save(tmp_path / f"{index}.png")
    assert read_frames(tmp_path)[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_unsupported_file_type_names_the_file(tmp_path):
    (tmp_path / "clip.txt").write_text("hello")
    with pytest.raises(DataError, match="clip.txt: not an image folder or a video file"):
        read_frames(tmp_path / "clip.txt")


def test_video_hash_follows_content():
    clip = smooth_clip(3, 8, 8)
    mask = np.zeros((3, 8, 8), dtype=bool)
    key = video_hash(clip, mask)
    assert key == video_hash(clip.copy(), mask.copy()) and len(key) == 64
    changed = clip.copy()
    changed[1, 2, 3, 0] ^= 1
    other_mask = mask.copy()
    other_mask[0, 0, 0] = True
    others = {
        video_hash(changed, mask),
        video_hash(clip, other_mask),
        video_hash(clip),
        video_hash(clip.reshape(3, 4, 16, 3), mask),
    }
    assert key not in others and len(others) == 4


def test_data_error_is_one_line():
    err = DataError("some/file.png", "bad\nthings happened")
    assert str(err) == "some/file.png: bad things happened"
    assert err.path == "some/file.png" and err.problem == "bad things happened"
