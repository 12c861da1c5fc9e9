"""Metric-model weight files: where each lives, whether it is present, and fetching it.

`python -m kvlock.weights status` lists every file; `python -m kvlock.weights fetch [NAMES|--all]`
downloads through the library that owns the file's cache (huggingface_hub, torch.hub), verified.
"""

from kvlock.weights.catalog import CATALOG, FETCH_COMMAND, ModelFile, entry
from kvlock.weights.store import (
    MIRROR_ENV,
    ChecksumMismatch,
    IncompleteDownload,
    downloads_allowed,
    ensure,
    fetch,
    hub_repo_dir,
    local_path,
    url_destination,
)

__all__ = [
    "CATALOG",
    "FETCH_COMMAND",
    "MIRROR_ENV",
    "ChecksumMismatch",
    "IncompleteDownload",
    "ModelFile",
    "downloads_allowed",
    "ensure",
    "entry",
    "fetch",
    "hub_repo_dir",
    "local_path",
    "url_destination",
]
