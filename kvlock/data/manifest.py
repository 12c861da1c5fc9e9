"""JSON Lines manifest of edits: one edit per line, paths relative to the manifest file.

Line: {"id", "video": frames dir | video file, "mask": masks dir | video file, "source_prompt",
"target_prompt", "edit_type"}; optional "video_id" (default: the "video" path as written) and
"objects" (mask ids for palette masks, overriding the dataset's); other keys go to meta["extra"].
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from kvlock.data.clips import ClipReader
from kvlock.data.errors import DataError, FailedItem
from kvlock.data.sample import EditSample, canonical_edit_type

REQUIRED_KEYS = ("id", "video", "mask", "source_prompt", "target_prompt", "edit_type")
OPTIONAL_KEYS = ("video_id", "objects")


def iter_manifest(
    path: str | Path, *, mask_threshold: int = 127, objects: Sequence[int] | None = None
) -> Iterator[EditSample | FailedItem]:
    """Yield one EditSample per manifest line, or a FailedItem saying what is wrong with it.

    A missing manifest raises DataError. Edits sharing a video share its frames array (read
    once); treat sample arrays as read-only.
    """
    manifest = Path(os.path.normpath(Path(path).absolute()))
    if not manifest.is_file():
        raise DataError(manifest, "manifest not found")
    reader = ClipReader()
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(manifest.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        record: dict = {}
        try:
            record = _decode(raw, manifest, lineno)
            _check(record, manifest, lineno)
            if record["id"] in first_line:
                raise DataError(
                    manifest,
                    f"line {lineno}: duplicate id '{record['id']}' (first on line {first_line[record['id']]})",
                )
            first_line[record["id"]] = lineno
            yield _load(record, manifest, lineno, reader, mask_threshold, objects)
        except DataError as err:
            yield FailedItem(
                edit_id=str(record.get("id") or f"{manifest.name}:{lineno}"),
                video_id=str(record.get("video_id") or record.get("video") or ""),
                edit_type=str(record.get("edit_type") or ""),
                error=str(err),
            )


def _decode(raw: bytes, manifest: Path, lineno: int) -> dict:
    """One manifest line -> its JSON object."""
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as err:
        raise DataError(manifest, f"line {lineno}: not valid UTF-8 (byte {err.start})") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            manifest, f"line {lineno}: malformed JSON ({err.msg} at column {err.colno})"
        ) from err
    if not isinstance(record, dict):
        raise DataError(
            manifest, f"line {lineno}: expected a JSON object, got {type(record).__name__}"
        )
    return record


def _check(record: dict, manifest: Path, lineno: int) -> None:
    """Required strings present and non-empty, well-formed object ids. The edit type is a label:
    any non-empty string is kept as given (canonical_edit_type maps known synonyms)."""
    where = f"line {lineno} (id '{record.get('id')}')"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise DataError(manifest, f"{where}: missing key(s) {', '.join(missing)}")
    for key in REQUIRED_KEYS:
        value = record[key]
        if not isinstance(value, str) or not value.strip():
            raise DataError(manifest, f"{where}: '{key}' must be a non-empty string, got {value!r}")
    ids = record.get("objects")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
        raise DataError(
            manifest, f"{where}: 'objects' must be null or a list of integer mask ids, got {ids!r}"
        )


def _load(
    record: dict, manifest: Path, lineno: int, reader: ClipReader, threshold: int, objects
) -> EditSample:
    where = f"line {lineno} (id '{record['id']}')"
    video = _inside(manifest, record["video"], where)
    mask_path = _inside(manifest, record["mask"], where)
    frames, mask, report = reader.load(
        video, mask_path, threshold=threshold, objects=record.get("objects", objects)
    )
    extra = {k: v for k, v in record.items() if k not in REQUIRED_KEYS + OPTIONAL_KEYS}
    return EditSample(
        edit_id=record["id"],
        video_id=str(record.get("video_id") or record["video"]),
        frames=frames,
        mask=mask,
        source_prompt=record["source_prompt"],
        target_prompt=record["target_prompt"],
        edit_type=record["edit_type"],
        meta={
            "dataset": "manifest",
            "manifest": str(manifest),
            "line": lineno,
            "video_path": str(video),
            "mask_path": str(mask_path),
            "mask": report,
            "canonical_edit_type": canonical_edit_type(record["edit_type"]),
            "extra": extra,
        },
    )


def _inside(manifest: Path, relative: str, where: str) -> Path:
    """manifest dir / relative, refusing absolute paths and '..' escapes (symlinks are followed as is)."""
    root = manifest.parent
    if Path(relative).is_absolute():
        raise DataError(
            manifest,
            f"{where}: absolute path '{relative}' not allowed (paths are relative to the manifest)",
        )
    path = Path(os.path.normpath(root / relative))
    if not path.is_relative_to(root):
        raise DataError(manifest, f"{where}: path '{relative}' escapes the manifest folder {root}")
    return path
