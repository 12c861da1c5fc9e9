"""PIE-Bench in its published layout (cure-lab/PnPInversion README, "Benchmark Download"):

    <root>/mapping_file.json                 {key: {image_path, original_prompt, editing_prompt,
                                              editing_instruction, editing_type_id ("0".."9"),
                                              blended_word, mask (run-length pairs)}}
    <root>/annotation_images/<image_path>    the 512x512 source images

Each image is a one-frame clip (T = 1: the backbones take 4k+1 frames, k = 0). The mask decodes
as PnPInversion's evaluation does (evaluation/evaluate.py, mask_decode): flat row-major
[start, length, start, length, ...] runs over the 512x512 image set to 1 (the edit region),
then, "to avoid annotation errors in boundary", the outermost rows and columns are set to 1 too
(`mask_border`, on by default: the border counts as edit region, outside the background
metrics). Unlike mask_decode, which clips a run that overruns the image, an overrunning run
fails the edit here. Labels are PIE's category folder names (PIE_EDIT_TYPES).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from kvlock.data.errors import DataError, FailedItem, read_json_file
from kvlock.data.masks import check_clip
from kvlock.data.sample import EditSample, canonical_edit_type
from kvlock.data.video_io import read_image

# editing_type_id -> PIE's category (annotation_images folder name without its image count).
PIE_EDIT_TYPES = {
    "0": "0_random",
    "1": "1_change_object",
    "2": "2_add_object",
    "3": "3_delete_object",
    "4": "4_change_attribute_content",
    "5": "5_change_attribute_pose",
    "6": "6_change_attribute_color",
    "7": "7_change_attribute_material",
    "8": "8_change_background",
    "9": "9_change_style",
}
REQUIRED_KEYS = ("image_path", "original_prompt", "editing_prompt", "editing_type_id", "mask")


def iter_pie_bench(
    root: str | Path,
    *,
    mapping_file: str = "mapping_file.json",
    images: str = "annotation_images",
    edit_types: str | Sequence[int | str] = "all",
    mask_border: bool = True,
    mask_size: Sequence[int] = (512, 512),
) -> Iterator[EditSample | FailedItem]:
    """Yield one one-frame EditSample per mapping entry (or a FailedItem saying what is wrong).

    edit_types: "all" or editing_type_ids (0-9) / category names to keep. mask_size: (H, W) the
    run-length masks index. A missing or malformed mapping file raises DataError naming the
    file and line: the whole set depends on it.
    """
    size = tuple(int(s) for s in mask_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"mask_size must be [height, width], got {list(mask_size)}")
    root = Path(root)
    return _iter(root / mapping_file, root / images, _wanted(edit_types), size, mask_border)


def _iter(mapping_path: Path, images: Path, wanted, size, mask_border: bool) -> Iterator:
    mapping = _read_mapping(mapping_path)
    image_root = Path(os.path.normpath(images.absolute()))
    for key, entry in mapping.items():
        type_id = str(entry.get("editing_type_id")) if isinstance(entry, dict) else ""
        if wanted is not None and type_id in PIE_EDIT_TYPES and type_id not in wanted:
            continue  # not in dataset.edit_types (an unknown id still becomes a failed row)
        try:
            yield _load(key, entry, mapping_path, image_root, size, mask_border)
        except DataError as err:
            yield FailedItem(
                edit_id=key, video_id=key, edit_type=PIE_EDIT_TYPES.get(type_id, ""), error=str(err)
            )


def decode_rle(runs: Sequence[int], size: tuple[int, int], border: bool = True) -> np.ndarray:
    """(H, W) bool mask from PIE's flat row-major [start, length, ...] runs; ValueError on bad runs.

    border: also set the outermost rows and columns (PnPInversion evaluate.py mask_decode).
    """
    height, width = size
    total = height * width
    if not isinstance(runs, list) or len(runs) % 2:
        raise ValueError("mask must be a list of [start, length] pairs (even length)")
    flat = np.zeros(total, bool)
    for i in range(0, len(runs), 2):
        start, length = runs[i], runs[i + 1]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, length)):
            raise ValueError(f"run {i // 2}: start and length must be integers, got {start!r}, {length!r}")
        if start < 0 or length < 0 or start + length > total:
            raise ValueError(
                f"run {i // 2} (start {start}, length {length}) overruns the {height}x{width} "
                f"image ({total} pixels)"
            )
        flat[start : start + length] = True
    mask = flat.reshape(height, width)
    if border:
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask


def _load(key, entry, mapping_path: Path, image_root: Path, size, border: bool) -> EditSample:
    where = f"entry '{key}'"
    if not isinstance(entry, dict):
        raise DataError(mapping_path, f"{where}: expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise DataError(mapping_path, f"{where}: missing key(s) {', '.join(missing)}")
    for name in ("image_path", "original_prompt", "editing_prompt"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise DataError(
                mapping_path, f"{where}: '{name}' must be a non-empty string, got {entry[name]!r}"
            )
    type_id = str(entry["editing_type_id"])
    if type_id not in PIE_EDIT_TYPES:
        raise DataError(
            mapping_path,
            f"{where}: unknown editing_type_id {entry['editing_type_id']!r} (PIE-Bench has 0-9)",
        )
    try:
        mask = decode_rle(entry["mask"], size, border)
    except ValueError as err:
        raise DataError(mapping_path, f"{where}: {err}") from err
    image = Path(os.path.normpath(image_root / entry["image_path"]))
    if Path(entry["image_path"]).is_absolute() or not image.is_relative_to(image_root):
        raise DataError(mapping_path, f"{where}: image_path '{entry['image_path']}' leaves {image_root}")
    frames = read_image(image)[None]  # (1, H, W, 3)
    check_clip(frames, mask[None], mapping_path)
    label = PIE_EDIT_TYPES[type_id]
    return EditSample(
        edit_id=str(key),
        video_id=str(key),
        frames=frames,
        mask=mask[None],
        source_prompt=_plain(entry["original_prompt"]),
        target_prompt=_plain(entry["editing_prompt"]),
        edit_type=label,
        meta={
            "dataset": "pie_bench",
            "mapping_file": str(mapping_path),
            "editing_type_id": type_id,
            "canonical_edit_type": canonical_edit_type(label),
            "editing_instruction": entry.get("editing_instruction"),
            "blended_word": entry.get("blended_word"),
            "edited_words": re.findall(r"\[([^\]]*)\]", entry["editing_prompt"]),
            "video_path": str(image),
            "mask_path": str(mapping_path),
            "mask": {"kind": "rle", "size": list(size), "border": border, "rule": "run-length"},
        },
    )


def _read_mapping(path: Path) -> dict:
    return read_json_file(path, dict, "mapping file not found (expected <root>/mapping_file.json)",
                          "a JSON object of entries")


def _wanted(selection) -> set[str] | None:
    if selection == "all":
        return None
    if isinstance(selection, (str, int)):
        selection = [selection]
    names = {name: i for i, name in PIE_EDIT_TYPES.items()}
    wanted = set()
    for item in selection:
        type_id = names.get(str(item), str(item))
        if type_id not in PIE_EDIT_TYPES:
            raise ValueError(
                f"Unknown PIE-Bench edit type {item!r}. Available: 0-9 or "
                + ", ".join(PIE_EDIT_TYPES.values())
            )
        wanted.add(type_id)
    return wanted


def _plain(prompt: str) -> str:
    return prompt.replace("[", "").replace("]", "")
