"""VACE-Benchmark's masked video-to-video entries in its published layout (ali-vilab/VACE-Benchmark
on the Hugging Face hub; layout from ali-vilab/VACE README "Local Directories Setup" and
UserGuide.md §4.2, and the hub commit 1006dbf that added the evaluation data):

    <root>/assets/examples/<task>/src_video.mp4, src_mask.mp4, ori_video.mp4   (example per task)
    <root>/data/sample<NNNNNN>_src_video.mp4, _src_mask.mp4, _raw_video.mp4    (evaluation data)

An entry is masked when it has both a src_video and a src_mask. Its clip is the original video
(ori_video / raw_video; `video: src` takes VACE's model input instead, whose masked region is
already blanked) and its edit region is src_mask > mask_threshold (white = generate). The
prompts are not files of the set (VACE gives them on its command lines, run_vace_*.sh and
UserGuide.md), so they come from `prompts: {entry: text}`; an entry without one is a failed row.
Labels: the task folder name, or `masked_v2v` for the evaluation samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kvlock.data.clips import ClipReader
from kvlock.data.errors import DataError, FailedItem
from kvlock.data.sample import EditSample, canonical_edit_type

SAMPLE = re.compile(r"^(sample\d+)_src_video\.mp4$")
SAMPLE_LABEL = "masked_v2v"
VIDEO_CHOICES = ("raw", "src")


def iter_vace_benchmark(
    root: str | Path,
    *,
    entries: str | Sequence[str] = "all",
    prompts: Mapping[str, str] | None = None,
    source_prompt: str = "",
    video: str = "raw",
    mask_threshold: int = 127,
) -> Iterator[EditSample | FailedItem]:
    """Yield one EditSample per masked entry (or a FailedItem saying what is missing).

    entries: "all" masked entries found, or their ids (task names / sample ids). prompts:
    entry id -> target prompt. source_prompt: the source description every entry shares
    (the set has none; empty means the target prompt is used). A root without either
    layout raises DataError.
    """
    if video not in VIDEO_CHOICES:
        raise ValueError(f"video must be one of {', '.join(VIDEO_CHOICES)}, got '{video}'")
    if isinstance(entries, str) and entries != "all":
        raise ValueError(f"entries must be 'all' or a list of entry ids, got '{entries}'")
    return _iter(Path(root), entries, dict(prompts or {}), source_prompt, video, mask_threshold)


def _iter(root: Path, entries, prompts: dict, source_prompt: str, video: str, threshold: int):
    found = _masked_entries(root)
    if not found:
        raise DataError(root, "no masked entries (expected assets/examples/<task>/src_mask.mp4 "
                        "or data/sample<N>_src_mask.mp4 beside a src_video)")
    wanted = list(found) if entries == "all" else list(entries)
    reader = ClipReader(cache_size=1)
    for entry in wanted:
        label = found[entry]["label"] if entry in found else ""
        try:
            yield _load(root, entry, found, prompts, source_prompt, video, reader, threshold)
        except DataError as err:
            yield FailedItem(edit_id=entry, video_id=entry, edit_type=label, error=str(err))


def _load(root, entry, found, prompts, source_prompt, video, reader, threshold) -> EditSample:
    if entry not in found:
        raise DataError(root, f"entry '{entry}' not found among the masked entries "
                        f"({', '.join(found) or 'none'})")
    files = found[entry]
    prompt = prompts.get(entry)
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(files["mask"], f"no prompt for entry '{entry}' (set dataset.prompts.{entry})")
    clip = files["raw"] if video == "raw" else files["src"]
    frames, mask, report = reader.load(clip, files["mask"], threshold=threshold)
    return EditSample(
        edit_id=entry,
        video_id=entry,
        frames=frames,
        mask=mask,
        source_prompt=source_prompt or prompt,
        target_prompt=prompt,
        edit_type=files["label"],
        meta={
            "dataset": "vace_benchmark",
            "canonical_edit_type": canonical_edit_type(files["label"]),
            "video_path": str(clip),
            "mask_path": str(files["mask"]),
            "mask": report,
        },
    )


def _masked_entries(root: Path) -> dict[str, dict]:
    """entry id -> {src, mask, raw (paths), label}, examples first, then evaluation samples."""
    found = {}
    examples = root / "assets" / "examples"
    if examples.is_dir():
        for task in sorted(p for p in examples.iterdir() if p.is_dir()):
            if (task / "src_video.mp4").is_file() and (task / "src_mask.mp4").is_file():
                found[task.name] = {"src": task / "src_video.mp4", "mask": task / "src_mask.mp4",
                                    "raw": task / "ori_video.mp4", "label": task.name}
    data = root / "data"
    if data.is_dir():
        for file in sorted(data.iterdir()):
            match = SAMPLE.match(file.name)
            if match and (data / f"{match[1]}_src_mask.mp4").is_file():
                found[match[1]] = {"src": file, "mask": data / f"{match[1]}_src_mask.mp4",
                                   "raw": data / f"{match[1]}_raw_video.mp4", "label": SAMPLE_LABEL}
    return found
