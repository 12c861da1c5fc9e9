"""The metric contract: inputs, result, settings and the `Metric` base class."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from kvlock.data.video_io import video_hash
from kvlock.metrics.frames import resize_video
from kvlock.metrics.weights import WeightsUnavailable

NO_BACKGROUND = "undefined: the mask covers the whole frame in every evaluated frame"
NO_EDIT_REGION = "undefined: empty mask (no edit region) in every evaluated frame"
NO_GROUND_TRUTH = "not computed: no ground-truth target clip"
TOO_FEW_FRAMES = "undefined: fewer than 2 frames"
LPIPS_NETS = ("alex", "squeeze", "vgg")
FLOW_ESTIMATORS = {"dis": "DIS", "farneback": "Farnebäck", "raft": "RAFT"}  # name -> label


@dataclass
class MetricInputs:
    """One edit to score.

    source, edited: (T, H, W, 3) uint8; mask: (T, H, W) bool, True = edit region;
    target_gt: (T, H, W, 3) uint8 ground-truth edit (synthetic edits) or None.
    Edited and ground-truth frames of another size are resized to the source size (INTER_AREA).
    source_key: content hash of the source clip (keys the source-feature cache); computed when
    not given.
    """

    source: np.ndarray
    edited: np.ndarray
    mask: np.ndarray
    source_prompt: str = ""
    target_prompt: str = ""
    target_gt: np.ndarray | None = None
    source_key: str | None = None

    def __post_init__(self):
        _check_video("source", self.source)
        num_frames, height, width, _ = self.source.shape
        self.edited = _match_source("edited", self.edited, num_frames, (height, width))
        if self.target_gt is not None:
            self.target_gt = _match_source("target_gt", self.target_gt, num_frames, (height, width))
        self.mask = np.asarray(self.mask).astype(bool)
        if self.mask.shape != (num_frames, height, width):
            raise ValueError(
                f"mask shape {self.mask.shape} differs from the source {(num_frames, height, width)}"
            )
        if self.source_key is None:
            self.source_key = video_hash(self.source)

    @property
    def num_frames(self) -> int:
        return int(self.source.shape[0])


@dataclass
class MetricResult:
    """What a metric returns for one edit.

    value: the per-video score, NaN when not computed (then `reason` says why);
    per_frame: per-frame (or per-frame-pair) scores the value averages, or None;
    flags: extra result-row columns, fully named (e.g. {"bg_psnr_capped": 2});
    model: what model ran (with "random init" when it was not trained), None for weight-free;
    random_weights: True when a random-weight model stood in for missing weights.
    """

    value: float
    per_frame: list[float] | None = None
    reason: str | None = None
    flags: dict = field(default_factory=dict)
    model: str | None = None
    random_weights: bool = False

    @classmethod
    def not_computed(cls, reason: str, **kwargs) -> MetricResult:
        return cls(math.nan, None, reason, **kwargs)


@dataclass(frozen=True)
class MetricSettings:
    """Options shared by all metrics (`conf/metrics/*.yaml`; per-metric overrides in `options`)."""

    frame_stride: int = 1
    psnr_cap: float = 100.0
    lpips_net: str = "squeeze"
    clip_model: str = "ViT-L-14-quickgelu"
    clip_pretrained: str | None = "openai"
    flow: str = "dis"
    allow_random_weights: bool = False
    seed: int = 0
    device: str = "auto"
    batch_size: int = 16
    weights_dir: str | None = None
    cache_dir: str | None = None
    cache_size: int = 32
    strip_brackets: bool = True
    offline: bool = False
    mask_threshold: int = 127  # gray mask value > this = edit region (PIE-Bench 127, FiVE 0)

    def __post_init__(self):
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")
        if self.lpips_net not in LPIPS_NETS:
            raise ValueError(
                f"Unknown lpips_net '{self.lpips_net}'. Available: {', '.join(LPIPS_NETS)}"
            )
        if self.flow not in FLOW_ESTIMATORS:
            raise ValueError(
                f"Unknown flow estimator '{self.flow}'. Available: {', '.join(FLOW_ESTIMATORS)}"
            )

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def loader_kwargs(self) -> dict:
        """Keyword arguments of the memoised model loaders (see weights.load_or_random)."""
        return {
            "allow_random": self.allow_random_weights,
            "seed": self.seed,
            "weights_dir": self.weights_dir,
            "device": self.torch_device,
            "offline": not self.download_allowed,
        }

    @property
    def download_allowed(self) -> bool:
        """Metrics fetch missing weights on first use unless `offline` or HF_HUB_OFFLINE=1."""
        return not self.offline and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0")

    def prompt(self, text: str) -> str:
        """The prompt as scored: PIE-Bench/FiVE `[word]` markers removed when `strip_brackets`
        (PnPInversion evaluate.py and FiVE-Bench evaluate.py drop "[" and "]")."""
        return text.replace("[", "").replace("]", "") if self.strip_brackets else text


class Metric:
    """One metric. Subclasses set the class attributes and implement `_compute`.

    `variant` names what ran (shown in tables); `label` is the table header, e.g. "WarpErr (DIS)";
    `scale` is the factor tables print the value with (METRICS.md: LPIPS x10^3, MSE x10^4, ...).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    higher_is_better: ClassVar[bool]
    version: ClassVar[str] = "1"
    scale: ClassVar[float] = 1.0

    def __init__(self, settings: MetricSettings):
        self.settings = settings

    @property
    def variant(self) -> str:
        return ""

    @property
    def label(self) -> str:
        return f"{self.title} ({self.variant})" if self.variant else self.title

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """Score one edit; a model whose weights are not cached gives NaN with the marker reason."""
        try:
            return self._compute(inputs)
        except WeightsUnavailable as err:
            return MetricResult.not_computed(str(err))

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label})"


def frame_mean(per_frame: torch.Tensor, empty_reason: str, **kwargs) -> MetricResult:
    """Mean over frames ignoring NaN (undefined) frames; all undefined -> NaN with `empty_reason`."""
    values = per_frame.detach().double().cpu()
    valid = ~torch.isnan(values)
    listed = [float(v) for v in values]
    if not valid.any():
        return MetricResult(math.nan, listed, empty_reason, **kwargs)
    return MetricResult(float(values[valid].mean()), listed, None, **kwargs)


def _check_video(name: str, frames: np.ndarray) -> None:
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
    ):
        got = f"{getattr(frames, 'dtype', type(frames).__name__)} {getattr(frames, 'shape', '')}"
        raise ValueError(f"{name} must be (T, H, W, 3) uint8, got {got}")
    if len(frames) == 0:
        raise ValueError(f"{name} has no frames")


def _match_source(
    name: str, frames: np.ndarray, num_frames: int, size: tuple[int, int]
) -> np.ndarray:
    _check_video(name, frames)
    if len(frames) != num_frames:
        raise ValueError(f"{name} has {len(frames)} frames, the source has {num_frames}")
    return frames if frames.shape[1:3] == size else resize_video(frames, size)
