"""FiVE-Bench in its published layout (LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark):

    <root>/edit_prompt/edit{1..6}_FiVE.json   a JSON list of edits: video_name, save_dir,
                                              source_prompt, target_prompt ("[edited words]"),
                                              editing_type_id, optional VLM questions
    <root>/images/<video_name>/<frame>.jpg    source frames
    <root>/bmasks/<video_name>/<frame>.jpg    JPEG edit masks, one per frame, same file name
    <root>/videos/<video_name>.mp4            the same clips as video (not read here)

One edit per list entry; its label is FiVE's task name for editing_type_id (FIVE_EDIT_TYPES).
The mask rule is FiVE's evaluation (FiVE-Bench evaluation/evaluate.py, main(): the mask of a
frame is the bmasks file of the same name, `np.array(mask) > 0`): here value > mask_threshold,
0 in conf/dataset/five_bench.yaml. Prompts lose their brackets as evaluate.py strips them; the
bracketed words are kept in meta["edited_words"].
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from kvlock.data.errors import DataError, FailedItem, read_json_file
from kvlock.data.masks import check_clip
from kvlock.data.sample import EditSample, canonical_edit_type
from kvlock.data.video_io import list_images, read_frames, read_mask_files

# editing_type_id -> FiVE's task name (FiVE-Bench README, "FiVE-Bench Overview").
FIVE_EDIT_TYPES = {
    1: "Object Replacement (Rigid)",
    2: "Object Replacement (Non-Rigid)",
    3: "Color Alteration",
    4: "Material Modification",
    5: "Object Addition",
    6: "Object Removal",
}
REQUIRED_KEYS = ("video_name", "source_prompt", "target_prompt", "editing_type_id")
VLM_KEYS = ("multiple_choice_question", "source_yes_no_question", "target_yes_no_question")


def iter_five_bench(
    root: str | Path,
    *,
    edit_files: str | Sequence[int | str] = "all",
    edit_types: str | Sequence[int | str] = "all",
    mask_threshold: int = 0,
) -> Iterator[EditSample | FailedItem]:
    """Yield one EditSample per FiVE edit (or a FailedItem saying what is wrong with it).

    edit_files: "all" (every edit_prompt/edit*_FiVE.json) or numbers / file names ([1, 3],
    ["edit5_FiVE.json"]). edit_types: "all" or editing_type_ids / FiVE task names to keep.
    A missing root or prompt folder raises DataError; a prompt file that is not a JSON list is
    one FailedItem naming the file and line, and the other files still run.
    """
    return _iter(Path(root), edit_files, _type_ids(edit_types), mask_threshold)  # ValueError now


def _iter(root: Path, edit_files, wanted_types, mask_threshold: int) -> Iterator:
    prompts = root / "edit_prompt"
    if not prompts.is_dir():
        raise DataError(prompts, "not found (expected a FiVE-Bench root with edit_prompt/)")
    read = lru_cache(maxsize=2)(_capture(lambda name: _read_clip(root, name, mask_threshold)))
    for file in _edit_files(prompts, edit_files):
        try:
            entries = _read_list(file)
        except DataError as err:
            yield FailedItem(edit_id=file.stem, video_id="", edit_type="", error=str(err))
            continue
        prefix = file.stem.removesuffix("_FiVE")
        for index, entry in enumerate(entries):
            if _deselected(entry, wanted_types):
                continue  # not in dataset.edit_types (an unknown id still becomes a failed row)
            video = entry.get("video_name") if isinstance(entry, dict) else None
            edit_id = f"{prefix}_{index:03d}_{video}" if isinstance(video, str) else f"{prefix}_{index:03d}"
            try:
                yield _load(entry, file, index, edit_id, read)
            except DataError as err:
                type_id = _type_id(entry.get("editing_type_id")) if isinstance(entry, dict) else None
                yield FailedItem(
                    edit_id=edit_id,
                    video_id=video if isinstance(video, str) else "",
                    edit_type=FIVE_EDIT_TYPES.get(type_id, ""),
                    error=str(err),
                )


def _load(entry, file: Path, index: int, edit_id: str, read) -> EditSample:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise DataError(file, f"{where}: expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise DataError(file, f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("video_name", "source_prompt", "target_prompt"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise DataError(file, f"{where}: '{key}' must be a non-empty string, got {entry[key]!r}")
    video = entry["video_name"]
    if "/" in video or "\\" in video or video in (".", ".."):
        raise DataError(file, f"{where}: video_name '{video}' is not a folder name")
    type_id = _type_id(entry["editing_type_id"])
    if type_id not in FIVE_EDIT_TYPES:
        raise DataError(
            file,
            f"{where}: unknown editing_type_id {entry['editing_type_id']!r} "
            f"(FiVE has {', '.join(map(str, FIVE_EDIT_TYPES))})",
        )
    frames, mask, report = _unwrap(read(video))
    label = FIVE_EDIT_TYPES[type_id]
    return EditSample(
        edit_id=edit_id,
        video_id=video,
        frames=frames,
        mask=mask,
        source_prompt=_plain(entry["source_prompt"]),
        target_prompt=_plain(entry["target_prompt"]),
        edit_type=label,
        meta={
            "dataset": "five_bench",
            "prompt_file": str(file),
            "entry": index,
            "editing_type_id": type_id,
            "canonical_edit_type": canonical_edit_type(label),
            "save_dir": entry.get("save_dir"),
            "edited_words": {
                "source": re.findall(r"\[([^\]]*)\]", entry["source_prompt"]),
                "target": re.findall(r"\[([^\]]*)\]", entry["target_prompt"]),
            },
            "vlm_questions": {k: entry[k] for k in VLM_KEYS if k in entry},
            "video_path": report["video_path"],
            "mask_path": report["path"],
            "mask": report,
        },
    )


def _read_clip(root: Path, video: str, threshold: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """frames (T, H, W, 3) uint8, mask (T, H, W) bool (value > threshold), mask report."""
    images = root / "images" / video
    masks = root / "bmasks" / video
    if not images.is_dir():
        raise DataError(images, "frame folder not found")
    if not masks.is_dir():
        raise DataError(masks, "mask folder not found")
    frames = read_frames(images)
    files = [masks / f.name for f in list_images(images)]
    for file in files:
        if not file.is_file():
            raise DataError(file, "mask not found for this frame")
    raw = read_mask_files(files)
    mask = raw > threshold
    check_clip(frames, mask, masks)
    report = {
        "path": str(masks),
        "video_path": str(images),
        "kind": "gray",
        "rule": f"value > {threshold}",
        "non_binary": not set(np.unique(raw).tolist()) <= {0, 1, 255},
    }
    return frames, mask, report


def _edit_files(prompts: Path, selection) -> list[Path]:
    if selection == "all":
        files = sorted(prompts.glob("edit*_FiVE.json"))
        if not files:
            raise DataError(prompts, "no edit*_FiVE.json files")
        return files
    if isinstance(selection, (str, int)):
        selection = [selection]
    files = []
    for item in selection:
        name = f"edit{item}_FiVE.json" if isinstance(item, int) or str(item).isdigit() else item
        files.append(prompts / str(name))
    return files


def _read_list(file: Path) -> list:
    return read_json_file(file, list, "prompt file not found", "a JSON list of edits")


def _deselected(entry, wanted: set[int] | None) -> bool:
    if wanted is None or not isinstance(entry, dict):
        return False
    type_id = _type_id(entry.get("editing_type_id"))
    return type_id in FIVE_EDIT_TYPES and type_id not in wanted


def _type_ids(selection) -> set[int] | None:
    """The editing_type_ids dataset.edit_types keeps (None: all)."""
    if selection == "all":
        return None
    if isinstance(selection, (str, int)):
        selection = [selection]
    names = {name: i for i, name in FIVE_EDIT_TYPES.items()}
    ids = set()
    for item in selection:
        type_id = names.get(item, _type_id(item))
        if type_id not in FIVE_EDIT_TYPES:
            raise ValueError(
                f"Unknown FiVE edit type {item!r}. Available: ids 1-6 or "
                + ", ".join(FIVE_EDIT_TYPES.values())
            )
        ids.add(type_id)
    return ids


def _type_id(value) -> int | None:
    """editing_type_id as an int (FiVE writes it as a number or a digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _plain(prompt: str) -> str:
    return prompt.replace("[", "").replace("]", "")


def _capture(read):
    def call(name):
        try:
            return read(name)
        except DataError as err:
            return err

    return call


def _unwrap(value):
    if isinstance(value, DataError):
        raise DataError(value.path, value.problem)
    return value
