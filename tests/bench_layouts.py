"""Miniature FiVE-Bench / PIE-Bench / VACE-Benchmark trees in their published layouts, built from
real DAVIS clips (frames/*.jpg + masks/*.png folders), never from the sets themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from kvlock.data.video_io import list_images


def clip(folder: Path, frames: int, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The first `frames` frames (T, H/scale, W/scale, 3) uint8 and masks (T, H, W) bool."""
    images = [np.asarray(Image.open(f).convert("RGB")) for f in list_images(folder / "frames")]
    masks = [np.asarray(Image.open(f).convert("L")) for f in list_images(folder / "masks")]
    video = np.stack(images[:frames])[:, ::scale, ::scale]
    mask = np.stack(masks[:frames])[:, ::scale, ::scale] > 127
    return np.ascontiguousarray(video), np.ascontiguousarray(mask)


def write_five_clip(root: Path, name: str, video: np.ndarray, mask: np.ndarray) -> None:
    """images/<name>/00001.jpg... and bmasks/<name>/00001.jpg... (JPEG-compressed 0/255 masks)."""
    (root / "images" / name).mkdir(parents=True)
    (root / "bmasks" / name).mkdir(parents=True)
    for t, (frame, region) in enumerate(zip(video, mask), start=1):
        Image.fromarray(frame).save(root / "images" / name / f"{t:05d}.jpg", quality=90)
        Image.fromarray(region.astype(np.uint8) * 255).save(
            root / "bmasks" / name / f"{t:05d}.jpg", quality=75
        )


def five_entry(name: str, type_id, source: str, target: str, **extra) -> dict:
    return {
        "video_name": name,
        "save_dir": f"{name}_edit",
        "source_prompt": source,
        "target_prompt": target,
        "editing_type_id": type_id,
        **extra,
    }


def write_five_prompts(root: Path, number: int, entries: list) -> Path:
    path = root / "edit_prompt" / f"edit{number}_FiVE.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))
    return path


def encode_rle(mask: np.ndarray) -> list[int]:
    """PIE-Bench's run-length pairs [start, length, ...] over the flat row-major (H, W) mask."""
    flat = np.concatenate([[0], mask.reshape(-1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[::2], edges[1::2]
    return [int(v) for pair in zip(starts, ends - starts) for v in pair]


def square(image: np.ndarray, size: int = 512) -> np.ndarray:
    """Centre square crop resized to size x size (PIE images are 512x512)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side]
    if crop.dtype == bool:
        resized = Image.fromarray(crop.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
        return np.asarray(resized) > 127
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))


def pie_entry(image_path: str, type_id: str, mask: np.ndarray, **extra) -> dict:
    return {
        "image_path": image_path,
        "original_prompt": "a photo of a scene",
        "editing_prompt": "a photo of a [golden] scene",
        "editing_instruction": "make it golden",
        "editing_type_id": type_id,
        "blended_word": "scene scene",
        "mask": encode_rle(mask),
        **extra,
    }


def write_pie_image(root: Path, image_path: str, image: np.ndarray) -> None:
    path = root / "annotation_images" / image_path
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def write_pie_mapping(root: Path, mapping: dict) -> Path:
    path = root / "mapping_file.json"
    path.write_text(json.dumps(mapping))
    return path


def write_vace_entry(folder: Path, prefix: str, video: np.ndarray, mask: np.ndarray,
                     raw_name: str) -> None:
    """VACE's masked entry: <prefix>src_video.mp4 (mask region blanked to gray 127, as VACE's
    inpainting preprocessing does), <prefix>src_mask.mp4 (white = generate) and the original."""
    from kvlock.data.video_io import write_mp4

    folder.mkdir(parents=True, exist_ok=True)
    blanked = video.copy()
    blanked[mask] = 127
    write_mp4(folder / f"{prefix}src_video.mp4", blanked)
    write_mp4(folder / f"{prefix}src_mask.mp4", mask.astype(np.uint8) * 255)
    write_mp4(folder / f"{prefix}{raw_name}.mp4", video)
