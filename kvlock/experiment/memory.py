"""Peak memory of one edit: CUDA peak allocation on GPU, else growth of the process's peak RSS."""

from __future__ import annotations

import resource
import sys

import torch


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Context manager; `.mb` afterwards.

    CUDA: `torch.cuda.max_memory_allocated` during the block (tensors only, not the allocator's
    cache). CPU: how far the block raised the process's peak resident set size (ru_maxrss), i.e.
    0 when the block stayed below an earlier peak of the same process; `.kind` names which.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.kind = "cuda_max_allocated" if self.cuda else "rss_peak_growth"
        self.mb = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            self._start = _peak_rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.mb = max(0.0, _peak_rss_mb() - self._start)
