"""DAVIS-2017 layout: palette annotations, objects merged or selected, prompts from config."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kvlock.backbones.geometry import FrameRules
from kvlock.data import EditSample, FailedItem, iter_dataset

CLIP = Path("/work/shared/data/videos/bmx-trees")
NUM_FRAMES = 9
BOX = (slice(10, 50), slice(20, 80))  # object 2: a fixed box in the top-left corner
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)

pytestmark = pytest.mark.skipif(not CLIP.exists(), reason="shared example data not present")


@pytest.fixture
def davis_root(tmp_path) -> Path:
    """Two sequences of 9 real frames; annotations: object 1 = the rider, object 2 = a box."""
    root = tmp_path / "DAVIS"
    for seq in ("bmx-trees", "bmx_copy"):
        images, notes = root / "JPEGImages" / "480p" / seq, root / "Annotations" / "480p" / seq
        images.mkdir(parents=True)
        notes.mkdir(parents=True)
        for t in range(NUM_FRAMES):
            shutil.copy(CLIP / "frames" / f"{t:05d}.jpg", images / f"{t:05d}.jpg")
            ids = (np.asarray(Image.open(CLIP / "masks" / f"{t:05d}.png")) > 127).astype(np.uint8)
            ids[BOX] = 2
            image = Image.fromarray(ids, mode="P")
            image.putpalette(PALETTE)
            image.save(notes / f"{t:05d}.png")
    return root


def rider_mask() -> np.ndarray:
    masks = np.stack(
        [np.asarray(Image.open(CLIP / "masks" / f"{t:05d}.png")) > 127 for t in range(NUM_FRAMES)]
    )
    masks[:, BOX[0], BOX[1]] = False
    return masks


def test_objects_merged_by_default(davis_root):
    items = list(iter_dataset({"name": "davis", "root": str(davis_root)}))
    assert [s.edit_id for s in items] == ["bmx-trees", "bmx_copy"]
    sample = items[0]
    assert isinstance(sample, EditSample) and sample.frames.shape == (NUM_FRAMES, 240, 432, 3)
    expected = rider_mask()
    expected[:, BOX[0], BOX[1]] = True
    assert (sample.mask == expected).all()
    assert sample.meta["mask"]["kind"] == "palette" and sample.meta["mask"]["object_ids"] == [1, 2]
    assert sample.source_prompt == "a video of bmx trees"
    assert sample.target_prompt == "a video of bmx trees, made of shiny gold"
    assert items[1].source_prompt == "a video of bmx copy"


def test_objects_selected_globally_and_per_sequence(davis_root):
    cfg = {"name": "davis", "root": str(davis_root), "objects": {"bmx-trees": [2], "bmx_copy": [1]}}
    box_only, rider_only = iter_dataset(cfg)
    assert box_only.mask.sum() == NUM_FRAMES * 40 * 60 and box_only.mask[:, BOX[0], BOX[1]].all()
    assert (rider_only.mask == rider_mask()).all()
    [selected] = iter_dataset(
        {"name": "davis", "root": str(davis_root), "sequences": ["bmx_copy"], "objects": [2]}
    )
    assert (selected.mask == box_only.mask).all()


def test_prompts_from_config_and_prepare(davis_root):
    prompts = {
        "bmx-trees": {
            "target_prompt": "a person riding a horse between trees",
            "edit_type": "object_replace",
        }
    }
    cfg = {
        "name": "davis",
        "root": str(davis_root),
        "sequences": ["bmx-trees"],
        "prompts": prompts,
        "prepare": {"max_frames": 17, "height": 64, "width": 112},
    }
    [sample] = iter_dataset(cfg, FrameRules(temporal_factor=4, size_multiple=16))
    assert (
        sample.target_prompt == "a person riding a horse between trees"
        and sample.edit_type == "object_replace"
    )
    assert sample.source_prompt == "a video of bmx trees"
    assert sample.frames.shape == (NUM_FRAMES, 64, 112, 3)
    assert sample.mask.shape == (NUM_FRAMES, 64, 112)


def test_missing_sequence_and_annotations_fail_alone(davis_root):
    shutil.rmtree(davis_root / "Annotations" / "480p" / "bmx_copy")
    cfg = {"name": "davis", "root": str(davis_root), "sequences": ["nope", "bmx_copy", "bmx-trees"]}
    missing, no_notes, good = iter_dataset(cfg)
    assert isinstance(missing, FailedItem) and isinstance(no_notes, FailedItem)
    assert missing.error.endswith("JPEGImages/480p/nope: not found")
    assert no_notes.error.endswith("Annotations/480p/bmx_copy: not found")
    assert isinstance(good, EditSample)
