"""Read clips and masks (image folders or video files), write H.264 mp4, hash clip content."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from kvlock.data.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder in natural order (2.png before 10.png); hidden files skipped."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    ]
    if not files:
        raise DataError(folder, f"no images ({'/'.join(IMAGE_EXTS)}) in folder")
    return sorted(
        files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]
    )


def read_frames(path: str | Path) -> np.ndarray:
    """A clip as (T, H, W, 3) uint8 RGB, from a folder of images or a video file."""
    path = _existing(path)
    if path.is_dir():
        files = list_images(path)
        return _stack([np.asarray(_open_image(f).convert("RGB")) for f in files], files)
    return _read_video(path, "rgb24")


def read_image(path: str | Path) -> np.ndarray:
    """One image as (H, W, 3) uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image not found")
    return np.asarray(_open_image(path).convert("RGB"))


def read_masks(path: str | Path) -> np.ndarray:
    """Raw mask values as (T, H, W) uint8, from a folder of images or a video file (as gray).

    Palette PNGs give their indices (object ids), mode-1 images 0/255, colour images the max over
    the channels. Binarization is the caller's job (see kvlock.data.masks).
    """
    path = _existing(path)
    if path.is_dir():
        files = list_images(path)
        return _stack([_mask_values(_open_image(f), f) for f in files], files)
    return _read_video(path, "gray")[..., 0]


def read_mask_files(files: list[Path]) -> np.ndarray:
    """Raw mask values as (T, H, W) uint8 from these image files, in this order (as read_masks)."""
    return _stack([_mask_values(_open_image(f), f) for f in files], files)


def is_palette_mask(path: str | Path) -> bool:
    """Whether a mask folder holds palette (indexed) PNGs, whose values are object ids."""
    path = _existing(path)
    return path.is_dir() and _open_image(list_images(path)[0]).mode == "P"


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8, crf: int = 17) -> Path:
    """Write (T, H, W, 3) or (T, H, W) uint8 frames as H.264 mp4 (yuv420p, crf = quality).

    Odd sizes are padded by one edge row/column (yuv420p needs even sizes). The file appears
    atomically: it is written next to `path` and renamed into place.
    """
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(
            f"write_mp4 needs (T,H,W,3) or (T,H,W) uint8, got {frames.dtype} {frames.shape}"
        )
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    _, height, width, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    try:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (frames.shape[2], frames.shape[1]),
            fps=fps,
            codec="libx264",
            quality=None,
            output_params=["-crf", str(crf), "-movflags", "+faststart"],
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def video_hash(frames: np.ndarray, mask: np.ndarray | None = None) -> str:
    """sha256 hex of the clip (and mask) bytes, shapes and dtypes: a content cache key."""
    digest = hashlib.sha256()
    for name, array in (("frames", frames), ("mask", mask)):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.shape}:{array.dtype.str};".encode())
            digest.update(array.data)
    return digest.hexdigest()


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found")
    if not path.is_dir() and path.suffix.lower() not in VIDEO_EXTS:
        raise DataError(path, f"not an image folder or a video file ({'/'.join(VIDEO_EXTS)})")
    return path


def _open_image(file: Path):
    from PIL import Image

    try:
        with Image.open(file) as image:
            image.load()
    except Exception as err:  # PIL raises many types for bad files
        raise DataError(file, f"unreadable image ({type(err).__name__}: {err})") from err
    return image


def _mask_values(image, file: Path) -> np.ndarray:
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * 255
    if image.mode in ("LA", "RGB", "RGBA"):
        return np.asarray(image.convert("RGB")).max(axis=2)
    raise DataError(file, f"unsupported mask image mode '{image.mode}' (use P, L, 1, RGB)")


def _stack(arrays: list[np.ndarray], files: list[Path]) -> np.ndarray:
    first = arrays[0].shape[:2]
    for array, file in zip(arrays, files):
        if array.shape[:2] != first:
            raise DataError(
                file, f"image size {_hw(array.shape)} differs from {files[0].name} ({_hw(first)})"
            )
    return np.stack(arrays)


def _read_video(path: Path, pix_fmt: str) -> np.ndarray:
    """(T, H, W, C) uint8 decoded by ffmpeg; C = 3 for rgb24, 1 for gray."""
    import imageio_ffmpeg

    channels = 3 if pix_fmt == "rgb24" else 1
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt=pix_fmt, bits_per_pixel=8 * channels)
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(b, np.uint8).reshape(height, width, channels) for b in reader]
    except Exception as err:  # ffmpeg failures surface as OSError/RuntimeError/ValueError
        last_line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(path, f"unreadable video ({last_line})") from err
    if not frames:
        raise DataError(path, "unreadable video (no frames decoded)")
    expected = round(meta.get("duration", 0) * meta.get("fps", 0))
    if len(frames) < expected - 1:  # one frame of slack for rounded container durations
        raise DataError(path, f"truncated video: decoded {len(frames)} of {expected} frames")
    return np.stack(frames)


def _hw(shape) -> str:
    return f"{shape[0]}x{shape[1]}"
