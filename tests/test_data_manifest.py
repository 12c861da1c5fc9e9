"""Manifest datasets: the shared real example, every kind of bad input, and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from kvlock.backbones.geometry import FrameRules
from kvlock.data import DataError, EditSample, FailedItem, iter_dataset, write_mp4

SHARED = Path("/work/shared/data/edits.jsonl")
RULES = FrameRules(temporal_factor=4, size_multiple=16)
SMALL = {"max_frames": 5, "height": None, "width": None}


def manifest_cfg(path, **prepare):
    cfg = OmegaConf.load("conf/dataset/manifest.yaml")
    return OmegaConf.merge(cfg, {"path": str(path), "prepare": prepare})


@pytest.mark.skipif(not SHARED.exists(), reason="shared example data not present")
def test_shared_example_loads_and_prepares():
    raw = list(iter_dataset(manifest_cfg(SHARED)))
    prepared = list(iter_dataset(manifest_cfg(SHARED), RULES))
    assert [s.edit_id for s in prepared] == [
        json.loads(line)["id"] for line in SHARED.read_text().splitlines()
    ]
    assert all(isinstance(s, EditSample) for s in raw + prepared), [
        s for s in prepared if isinstance(s, FailedItem)
    ]
    assert raw[0].frames is raw[1].frames  # edits sharing a video read it once
    by_id = {s.edit_id: s for s in raw}
    assert by_id["schoolgirls__uniforms"].meta["video_path"].endswith("video.mp4")
    assert by_id["schoolgirls__uniforms"].frames.shape == (24, 240, 432, 3)
    for before, after in zip(raw, prepared):
        assert after.frames.shape == (17, 64, 112, 3) and after.mask.shape == (17, 64, 112)
        assert before.mask.shape == before.frames.shape[:3]
        assert after.mask.mean() == pytest.approx(before.mask[:17].mean(), rel=0.1)
        assert after.meta["prepare"]["size"] == [64, 112]


# -- bad inputs ------------------------------------------------------------------------------


def write_clip(
    folder: Path, num_frames=5, size=(32, 48), mask_size=None, mask_frames=None, mask_value=None
):
    """frames/ (JPEG) and masks/ (0/255 PNG, a box) under `folder`."""
    (folder / "frames").mkdir(parents=True)
    (folder / "masks").mkdir()
    height, width = size
    for t in range(num_frames):
        frame = np.full((height, width, 3), 40 * t % 256, dtype=np.uint8)
        Image.fromarray(frame).save(folder / "frames" / f"{t:05d}.jpg")
    mh, mw = mask_size or size
    for t in range(num_frames if mask_frames is None else mask_frames):
        mask = np.zeros((mh, mw), dtype=np.uint8)
        mask[mh // 4 : mh // 2, mw // 4 : mw // 2] = 255
        if mask_value is not None:
            mask[:] = mask_value
        Image.fromarray(mask).save(folder / "masks" / f"{t:05d}.png")


def edit(name, **fields):
    record = {
        "id": name,
        "video": f"videos/{name}/frames",
        "mask": f"videos/{name}/masks",
        "source_prompt": "a grey square",
        "target_prompt": "a gold square",
        "edit_type": "color_change",
    }
    return {**record, **fields}


def make_bad(case: str, root: Path) -> tuple[bytes, str, str]:
    """Build the bad edit's files; returns (manifest line, file named in the error, error text)."""
    bad = root / "videos" / "bad"
    line = edit("bad")
    if case == "corrupt_jpeg":
        write_clip(bad)
        (bad / "frames" / "00002.jpg").write_bytes(b"not a jpeg at all" * 20)
        return _json(line), "frames/00002.jpg", "unreadable image (UnidentifiedImageError"
    if case == "truncated_jpeg":
        write_clip(bad)
        data = (bad / "frames" / "00003.jpg").read_bytes()
        (bad / "frames" / "00003.jpg").write_bytes(data[: len(data) // 2])
        return _json(line), "frames/00003.jpg", "unreadable image (OSError"
    if case in ("truncated_mp4", "mp4_without_header"):
        write_clip(bad, num_frames=9)
        clip = np.random.default_rng(0).integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)
        data = write_mp4(bad / "video.mp4", clip).read_bytes()
        cut = len(data) // 2 if case == "truncated_mp4" else 300
        (bad / "video.mp4").write_bytes(data[:cut])
        line["video"] = "videos/bad/video.mp4"
        problem = "truncated video: decoded" if case == "truncated_mp4" else "unreadable video"
        return _json(line), "bad/video.mp4", problem
    if case == "count_mismatch":
        write_clip(bad, mask_frames=4)
        return _json(line), "bad/masks", "mask has 4 frames but the video has 5"
    if case == "size_mismatch":
        write_clip(bad, mask_size=(16, 24))
        return _json(line), "bad/masks", "mask size 16x24 differs from frame size 32x48"
    if case == "mixed_frame_sizes":
        write_clip(bad)
        Image.fromarray(np.zeros((30, 48, 3), dtype=np.uint8)).save(bad / "frames" / "00004.jpg")
        return _json(line), "frames/00004.jpg", "image size 30x48 differs from 00000.jpg (32x48)"
    if case == "empty_mask":
        write_clip(bad, mask_value=0)
        return _json(line), "bad/masks", "empty mask (no edit region)"
    if case == "full_mask":
        write_clip(bad, mask_value=255)
        return _json(line), "bad/masks", "full-frame mask (nothing to preserve)"
    if case == "missing_folder":
        return _json(line), "videos/bad/frames", "not found"
    if case == "empty_folder":
        write_clip(bad)
        for file in (bad / "frames").iterdir():
            file.unlink()
        return _json(line), "bad/frames", "no images"
    if case == "missing_prompt":
        del line["target_prompt"]
        return _json(line), "edits.jsonl", "line 2 (id 'bad'): missing key(s) target_prompt"
    if case == "empty_prompt":
        return (
            _json({**line, "source_prompt": "  "}),
            "edits.jsonl",
            "'source_prompt' must be a non-empty string",
        )
    if case == "non_string_edit_type":
        return (
            _json({**line, "edit_type": 3}),
            "edits.jsonl",
            "line 2 (id 'bad'): 'edit_type' must be a non-empty string, got 3",
        )
    if case == "absolute_path":
        write_clip(bad)
        line["video"] = str(bad / "frames")
        return _json(line), "edits.jsonl", "absolute path"
    if case == "dotdot_escape":
        write_clip(root.parent / "outside")
        line["video"] = "videos/../../outside/frames"
        return (
            _json(line),
            "edits.jsonl",
            "path 'videos/../../outside/frames' escapes the manifest folder",
        )
    if case == "non_utf8":
        return _json(line).replace(b"gold", b"g\xffld"), "edits.jsonl", "line 2: not valid UTF-8"
    if case == "malformed_json":
        return _json(line)[:-5], "edits.jsonl", "line 2: malformed JSON"
    if case == "duplicate_id":
        return _json(edit("good1")), "edits.jsonl", "line 2: duplicate id 'good1' (first on line 1)"
    if case == "absent_object_id":
        write_clip(bad)
        return _json({**line, "objects": [7]}), "bad/masks", "object ids [7] not in the mask"
    raise AssertionError(case)


def _json(record) -> bytes:
    return json.dumps(record).encode()


BAD_CASES = [
    "corrupt_jpeg",
    "truncated_jpeg",
    "truncated_mp4",
    "mp4_without_header",
    "count_mismatch",
    "size_mismatch",
    "mixed_frame_sizes",
    "empty_mask",
    "full_mask",
    "missing_folder",
    "empty_folder",
    "missing_prompt",
    "empty_prompt",
    "non_string_edit_type",
    "absolute_path",
    "dotdot_escape",
    "non_utf8",
    "malformed_json",
    "duplicate_id",
    "absent_object_id",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_edit_fails_alone_with_a_clear_error(case, tmp_path):
    root = tmp_path / "set"
    for name in ("good1", "good2"):
        write_clip(root / "videos" / name)
    bad_line, named_file, problem = make_bad(case, root)
    lines = [_json(edit("good1")), bad_line, _json(edit("good2"))]
    (root / "edits.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    items = list(iter_dataset(manifest_cfg(root / "edits.jsonl", **SMALL), RULES))

    assert [type(i).__name__ for i in items] == ["EditSample", "FailedItem", "EditSample"], items
    failed = items[1]
    assert "\n" not in failed.error
    assert problem in failed.error
    path, _, _ = failed.error.partition(": ")
    assert path.endswith(named_file)
    unparsed = case in ("non_utf8", "malformed_json")
    assert failed.edit_id == (
        "good1" if case == "duplicate_id" else "edits.jsonl:2" if unparsed else "bad"
    )
    assert items[2].frames.shape == (5, 32, 48, 3)


def test_edit_type_is_a_label_kept_as_given(tmp_path):
    """Benchmarks name their categories their own way: any non-empty label runs, known synonyms
    map to a canonical name, and only a missing or non-string type fails the edit."""
    for name in ("a", "b", "c"):
        write_clip(tmp_path / "videos" / name)
    lines = [
        edit("a", edit_type="object_remove"),
        edit("b", edit_type="Material Modification"),
        edit("c", edit_type="teleport"),
    ]
    (tmp_path / "edits.jsonl").write_bytes(b"\n".join(_json(r) for r in lines))

    items = list(iter_dataset(manifest_cfg(tmp_path / "edits.jsonl", **SMALL), RULES))

    assert [type(i).__name__ for i in items] == ["EditSample"] * 3, items
    assert [i.edit_type for i in items] == ["object_remove", "Material Modification", "teleport"]
    assert [i.meta["canonical_edit_type"] for i in items] == ["removal", "attribute_change", None]


def test_non_binary_mask_is_thresholded_and_reported(tmp_path):
    write_clip(tmp_path / "videos" / "soft")
    for file in (tmp_path / "videos" / "soft" / "masks").iterdir():
        values = np.zeros((32, 48), dtype=np.uint8)
        values[:, 10:20], values[:, 20:30] = 100, 200
        Image.fromarray(values).save(file)
    (tmp_path / "edits.jsonl").write_bytes(_json(edit("soft")))

    [strict] = iter_dataset(manifest_cfg(tmp_path / "edits.jsonl", **SMALL), RULES)
    [loose] = iter_dataset(
        manifest_cfg(tmp_path / "edits.jsonl", mask_threshold=50, **SMALL), RULES
    )

    assert strict.mask[0].any(axis=0).nonzero()[0].tolist() == list(range(20, 30))
    assert loose.mask[0].any(axis=0).nonzero()[0].tolist() == list(range(10, 30))
    assert strict.meta["mask"]["non_binary"] and strict.meta["mask"]["rule"] == "value > 127"
    assert loose.meta["prepare"]["mask_threshold"] == 50


def test_palette_masks_select_objects_per_line(tmp_path):
    write_clip(tmp_path / "videos" / "two")
    for file in (tmp_path / "videos" / "two" / "masks").iterdir():
        ids = np.zeros((32, 48), dtype=np.uint8)
        ids[4:12, 4:12], ids[20:28, 30:40] = 1, 2
        image = Image.fromarray(ids, mode="P")
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0])
        image.save(file)
    lines = [
        edit("two", id="both"),
        edit("two", id="first", objects=[1]),
        edit("two", id="second", objects=[2]),
    ]
    (tmp_path / "edits.jsonl").write_bytes(b"\n".join(_json(r) for r in lines))

    both, first, second = iter_dataset(manifest_cfg(tmp_path / "edits.jsonl"))

    assert (
        both.mask[0].sum() == 64 + 80 and first.mask[0].sum() == 64 and second.mask[0].sum() == 80
    )
    assert (both.mask == (first.mask | second.mask)).all()
    assert both.meta["mask"]["kind"] == "palette" and both.meta["mask"]["object_ids"] == [1, 2]


def test_registry_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"^Unknown dataset 'webvid'. Available: davis, five_bench, manifest, pie_bench, "
        r"synthetic, vace_benchmark$",
    ):
        iter_dataset({"name": "webvid"})
    with pytest.raises(ValueError, match=r"needs dataset.path=\.\.\."):
        iter_dataset(OmegaConf.load("conf/dataset/manifest.yaml"))  # raises at the call
    with pytest.raises(ValueError, match="Bad option for dataset 'manifest'"):
        iter_dataset({"name": "manifest", "path": "x.jsonl", "pth": 1})
    with pytest.raises(DataError, match="nope.jsonl: manifest not found"):
        next(iter_dataset({"name": "manifest", "path": str(tmp_path / "nope.jsonl")}))
