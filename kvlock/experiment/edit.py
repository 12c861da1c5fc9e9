"""One dataset item end to end: prepare → run_edit → metrics → trace and videos → result row.

Any failure of one item becomes a `status="failed"` row with a one-line reason (traceback at
DEBUG); only `NonFiniteError(abort=True)` propagates, to stop the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kvlock.data import DataError, EditSample, FailedItem, PrepareConfig, prepare_sample, video_hash
from kvlock.engine.config import EditConfig
from kvlock.engine.editor import NonFiniteError, run_edit
from kvlock.engine.memory import check_fits
from kvlock.experiment.artifacts import save_trace, save_videos
from kvlock.experiment.memory import PeakMemory
from kvlock.metrics import MetricInputs, evaluate

log = logging.getLogger(__name__)


def one_line(text: object, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


@dataclass
class EditOptions:
    """`run:` settings that shape the files of one edit."""

    save_videos: bool = True
    save_comparison: bool = True
    fps: float = 8
    memory_guard: bool = True


class EditRunner:
    """Turns dataset items into result rows for one method; the backbone is built on first use."""

    def __init__(self, build_backbone: Callable[[], object], method: EditConfig, metrics: list,
                 prepare: PrepareConfig, run_dir: Path, seed: int, source_cache=None,
                 options: EditOptions | None = None):
        self._build_backbone, self._backbone = build_backbone, None
        self.method, self.metrics, self.prepare = method, metrics, prepare
        self.run_dir, self.seed, self.source_cache = Path(run_dir), seed, source_cache
        self.options = options or EditOptions()

    @property
    def backbone(self):
        if self._backbone is None:
            self._backbone = self._build_backbone()
        return self._backbone

    def __call__(self, item: EditSample | FailedItem) -> tuple[dict, dict[str, Path]]:
        """(row, {"edit": mp4, "compare": mp4} of the files written)."""
        ids = {"edit_id": item.edit_id, "video_id": item.video_id, "edit_type": item.edit_type}
        if isinstance(item, FailedItem):
            return self._failed(ids, item.error), {}
        backbone = self.backbone  # a backbone that cannot be built fails the job, not the edit
        try:
            return self._run(backbone, item, ids)
        except NonFiniteError as err:
            if err.abort:
                raise
            return self._failed(ids, f"NonFiniteError: {err}"), {}
        except DataError as err:  # already "<file>: <problem>"
            log.debug("edit %s failed", item.edit_id, exc_info=True)
            return self._failed(ids, str(err)), {}
        except Exception as err:  # one bad edit never stops the set
            log.debug("edit %s failed", item.edit_id, exc_info=True)
            return self._failed(ids, f"{type(err).__name__}: {err}"), {}

    def _run(self, backbone, item: EditSample, ids: dict) -> tuple[dict, dict[str, Path]]:
        sample = prepare_sample(item, backbone.geometry.frame_rules, self.prepare)
        if self.options.memory_guard:
            check_fits(backbone, self.method, *sample.frames.shape[:3], fg_fraction=float(sample.mask.mean()))
        with PeakMemory(backbone.device) as memory:
            start = time.perf_counter()
            out = run_edit(backbone, sample, self.method, self.seed, self.source_cache)
            seconds = time.perf_counter() - start
        start = time.perf_counter()
        inputs = MetricInputs(source=sample.frames, edited=out.frames, mask=sample.mask,
                              source_prompt=sample.source_prompt, target_prompt=sample.target_prompt,
                              target_gt=sample.target_frames, source_key=video_hash(sample.frames))
        scores = evaluate(inputs, self.metrics)
        metric_seconds = time.perf_counter() - start
        save_trace(self.run_dir, sample.edit_id, out.trace)
        videos = save_videos(self.run_dir, sample.edit_id, sample.frames, sample.mask, out.frames,
                             self.options.fps, self.options.save_videos, self.options.save_comparison)
        num_frames, height, width = sample.frames.shape[:3]
        row = {
            **ids, "status": "ok", "error": None, "seconds": seconds, "peak_mem_mb": memory.mb,
            "peak_mem_kind": memory.kind, "nfe": out.nfe, "steps": self.method.steps,
            "metric_seconds": metric_seconds, "num_frames": num_frames, "height": height, "width": width,
            **out.stats, **scores,
        }
        return row, videos

    def _failed(self, ids: dict, error: str) -> dict:
        reason = one_line(error)
        log.warning("edit %s failed: %s", ids["edit_id"], reason)
        return {**ids, "status": "failed", "error": reason}
