"""Fit an EditSample to what the backbone accepts: frame count, stride, size; recorded in meta."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Protocol

import numpy as np

from kvlock.data.errors import DataError
from kvlock.data.masks import check_coverage
from kvlock.data.sample import EditSample

RESIZE_MODES = ("resize_crop", "resize")


class SupportsFrameRules(Protocol):
    """What a backbone accepts: T = temporal_factor·k + 1 frames, H and W multiples of
    size_multiple (implemented by kvlock.backbones.geometry.FrameRules, `backbone.geometry.frame_rules`)."""

    temporal_factor: int
    size_multiple: int


@dataclass(frozen=True)
class PrepareConfig:
    """The `prepare:` block of a dataset config.

    max_frames: cap after striding (None = all); frame_stride: keep every n-th frame;
    height / width: target size (None = keep the source scale on that side), floored to a
    multiple of the backbone's size_multiple; resize_mode: 'resize_crop' (scale to cover the
    target, then centre-crop) or 'resize' (scale each side independently, aspect not kept);
    mask_threshold: raw gray mask values above it are the edit region (applied by the loaders);
    min/max_mask_fraction: bounds on the prepared mask's share of the clip.
    """

    max_frames: int | None = None
    frame_stride: int = 1
    height: int | None = None
    width: int | None = None
    resize_mode: str = "resize_crop"
    mask_threshold: int = 127
    min_mask_fraction: float = 0.0
    max_mask_fraction: float = 1.0

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"Unknown resize_mode '{self.resize_mode}'. Available: {', '.join(RESIZE_MODES)}"
            )
        if self.frame_stride < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise ValueError(
                f"frame_stride and max_frames must be >= 1, got {self.frame_stride}, {self.max_frames}"
            )
        if any(s is not None and s < 1 for s in (self.height, self.width)):
            raise ValueError(f"height and width must be >= 1, got {self.height}, {self.width}")
        if not 0 <= self.min_mask_fraction < self.max_mask_fraction <= 1:
            raise ValueError("need 0 <= min_mask_fraction < max_mask_fraction <= 1")

    @classmethod
    def from_mapping(cls, options: Mapping | None) -> PrepareConfig:
        """Build from a dict / DictConfig; unknown keys are an error (typos in overrides)."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"Unknown prepare option(s) {unknown}. Available: {', '.join(sorted(known))}"
            )
        return cls(**options)


def prepare_sample(
    sample: EditSample,
    rules: SupportsFrameRules,
    cfg: PrepareConfig | Mapping | None = None,
    **options,
) -> EditSample:
    """A new sample trimmed and resized for the backbone; `meta["prepare"]` says what was done.

    Frames are strided, capped at max_frames, then cut to the largest temporal_factor·k + 1
    (k >= 1; a one-frame sample, an image, stays one frame: k = 0); frames, mask and target_frames are resized and cropped identically (mask:
    nearest). `cfg` is a PrepareConfig or a mapping of its fields; keyword `options` override it.
    """
    base = asdict(cfg) if isinstance(cfg, PrepareConfig) else dict(cfg or {})
    cfg = PrepareConfig.from_mapping({**base, **options})
    factor, multiple = rules.temporal_factor, rules.size_multiple
    if cfg.max_frames is not None and cfg.max_frames < factor + 1:
        raise ValueError(f"max_frames {cfg.max_frames} is below the backbone minimum {factor + 1}")
    video_path = sample.meta.get("video_path", sample.meta.get("source", sample.edit_id))
    mask_path = sample.meta.get("mask_path", video_path)

    keep = np.arange(0, sample.num_frames, cfg.frame_stride)[: cfg.max_frames]
    if len(keep) < factor + 1 and sample.num_frames > 1:  # an image (T = 1) is 4k+1 with k = 0
        after = f" after stride {cfg.frame_stride}" if cfg.frame_stride > 1 else ""
        raise DataError(
            video_path,
            f"frame count {len(keep)}{after} too short for the backbone (needs {factor}k+1 ≥ {factor + 1})",
        )
    keep = keep[: (len(keep) - 1) // factor * factor + 1]

    height, width = sample.size
    resized, out, box = _geometry(height, width, cfg, multiple, video_path)
    frames = _resize_crop(sample.frames[keep], resized, box, nearest=False)
    mask = _resize_crop(sample.mask[keep].view(np.uint8), resized, box, nearest=True).astype(bool)
    target = None
    if sample.target_frames is not None:
        target = _resize_crop(sample.target_frames[keep], resized, box, nearest=False)
    fraction = check_coverage(mask, mask_path, cfg.min_mask_fraction, cfg.max_mask_fraction)

    record = {
        "original_frames": sample.num_frames,
        "frame_stride": cfg.frame_stride,
        "frames_kept": len(keep),
        "original_size": [height, width],
        "resized_size": list(resized),
        "size": list(out),
        "crop_box": list(box),
        "resize_mode": cfg.resize_mode,
        "mask_threshold": cfg.mask_threshold,
        "mask_fraction_before": float(sample.mask.mean()),
        "mask_fraction": fraction,
    }
    return replace(
        sample,
        frames=frames,
        mask=mask,
        target_frames=target,
        meta={**sample.meta, "prepare": record},
    )


def _geometry(height: int, width: int, cfg: PrepareConfig, multiple: int, path) -> tuple:
    """(resized (h, w), output (h, w), crop box (top, left, bottom, right) in the resized frame)."""
    if cfg.resize_mode == "resize":
        resized = (cfg.height or height, cfg.width or width)
    else:
        scales = [t / s for t, s in ((cfg.height, height), (cfg.width, width)) if t is not None]
        scale = max(scales) if scales else 1.0
        resized = (max(1, round(height * scale)), max(1, round(width * scale)))
    want = (cfg.height or resized[0], cfg.width or resized[1])
    out = (want[0] // multiple * multiple, want[1] // multiple * multiple)
    if min(out) == 0:
        raise DataError(
            path,
            f"size {want[0]}x{want[1]} is smaller than the backbone's size multiple {multiple}",
        )
    top, left = (resized[0] - out[0]) // 2, (resized[1] - out[1]) // 2
    return resized, out, (top, left, top + out[0], left + out[1])


def _resize_crop(clip: np.ndarray, size: tuple[int, int], box: tuple, nearest: bool) -> np.ndarray:
    """Resize (T, H, W[, C]) uint8 frames to `size` (h, w), then crop to `box`; returns a copy."""
    import cv2

    height, width = clip.shape[1:3]
    if (height, width) != tuple(size):
        if nearest:
            interp = cv2.INTER_NEAREST_EXACT
        else:
            interp = cv2.INTER_AREA if size[0] < height else cv2.INTER_LINEAR
        clip = np.stack(
            [cv2.resize(frame, (size[1], size[0]), interpolation=interp) for frame in clip]
        )
    top, left, bottom, right = box
    return np.ascontiguousarray(clip[:, top:bottom, left:right])
