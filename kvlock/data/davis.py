"""DAVIS-2017 layout: <root>/JPEGImages/<res>/<seq>/*.jpg, <root>/Annotations/<res>/<seq>/*.png.

One edit per sequence. The edit region is the union of the annotated objects (palette ids > 0)
or the ids chosen by `objects`. Prompts come from `prompts[seq]` (keys source_prompt,
target_prompt, edit_type; each optional) and default to the templates, where {name} is the
sequence name with '-' and '_' read as spaces: "a video of {name}" -> "a video of {name},
made of shiny gold" (attribute_change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kvlock.data.clips import ClipReader
from kvlock.data.errors import DataError, FailedItem
from kvlock.data.sample import EditSample, canonical_edit_type, check_edit_type

SOURCE_PROMPT = "a video of {name}"
TARGET_PROMPT = "a video of {name}, made of shiny gold"
EDIT_TYPE = "attribute_change"


def iter_davis(
    root: str | Path,
    *,
    resolution: str = "480p",
    sequences: str | Sequence[str] = "all",
    objects: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
    prompts: Mapping[str, Mapping[str, str]] | None = None,
    source_prompt: str = SOURCE_PROMPT,
    target_prompt: str = TARGET_PROMPT,
    edit_type: str = EDIT_TYPE,
    mask_threshold: int = 127,
) -> Iterator[EditSample | FailedItem]:
    """Yield one EditSample per sequence (or a FailedItem saying what is wrong with it).

    sequences: "all" (every folder of JPEGImages/<res>) or a list of names. objects: None (all
    objects merged), a list of ids for every sequence, or {seq: ids | None}. A missing root or
    image folder raises DataError.
    """
    root = Path(root)
    images = root / "JPEGImages" / resolution
    if not images.is_dir():
        raise DataError(
            images, "not found (expected a DAVIS root with JPEGImages/<resolution>/<sequence>)"
        )
    if sequences == "all":
        sequences = sorted(p.name for p in images.iterdir() if p.is_dir())
        if not sequences:
            raise DataError(images, "no sequence folders")
    elif isinstance(sequences, str):
        raise ValueError(f"sequences must be 'all' or a list of names, got '{sequences}'")
    prompts = prompts or {}
    reader = ClipReader(cache_size=1)
    for seq in sequences:
        spec = {
            "source_prompt": source_prompt,
            "target_prompt": target_prompt,
            "edit_type": edit_type,
        }
        spec.update(prompts.get(seq, {}))
        try:
            yield _load(
                root, resolution, seq, spec, _objects_for(objects, seq), reader, mask_threshold
            )
        except DataError as err:
            yield FailedItem(seq, seq, str(spec["edit_type"]), str(err))


def _load(
    root: Path, resolution: str, seq: str, spec: dict, objects, reader: ClipReader, threshold
) -> EditSample:
    video = root / "JPEGImages" / resolution / seq
    mask_path = root / "Annotations" / resolution / seq
    unknown = sorted(set(spec) - {"source_prompt", "target_prompt", "edit_type"})
    if unknown:
        raise DataError(video, f"unknown prompt key(s) {unknown} for sequence '{seq}'")
    name = seq.replace("-", " ").replace("_", " ")
    try:
        texts = {k: spec[k].format(name=name) for k in ("source_prompt", "target_prompt")}
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(
            video, f"bad prompt template (only {{name}} is filled in): {err!r}"
        ) from err
    for key, text in texts.items():
        if not text.strip():
            raise DataError(video, f"empty {key} for sequence '{seq}'")
    try:
        check_edit_type(spec["edit_type"])  # a label: any non-empty string, kept as given
    except ValueError as err:
        raise DataError(video, f"sequence '{seq}': {err}") from err
    frames, mask, report = reader.load(video, mask_path, threshold=threshold, objects=objects)
    return EditSample(
        edit_id=seq,
        video_id=seq,
        frames=frames,
        mask=mask,
        edit_type=spec["edit_type"],
        meta={
            "dataset": "davis",
            "video_path": str(video),
            "mask_path": str(mask_path),
            "mask": report,
            "canonical_edit_type": canonical_edit_type(spec["edit_type"]),
        },
        **texts,
    )


def _objects_for(objects, seq: str):
    if isinstance(objects, Mapping):
        return objects.get(seq)
    return objects
