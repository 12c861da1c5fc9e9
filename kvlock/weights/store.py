"""Finding and downloading the catalog's files.

Downloads go through the owning library: `huggingface_hub.hf_hub_download` (resumable `.incomplete`
file, atomic move into the cache) and `torch.hub.download_url_to_file` (temporary file removed on
failure, atomic move). Each finished file is checked against its sha256 (catalog digest, or the
LFS digest the Hub reports); a mismatch deletes it, so no later run loads it.
`HF_ENDPOINT` redirects Hub downloads (and Hub-hosted URLs) to another server, e.g. a mirror;
`KVLOCK_WEIGHTS_MIRROR` redirects the other URLs (`https://host/path` -> `<mirror>/host/path`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from kvlock.weights.catalog import ModelFile

HF_URL = "https://huggingface.co"
MIRROR_ENV = "KVLOCK_WEIGHTS_MIRROR"
log = logging.getLogger(__name__)
_FAILED: set[tuple[ModelFile, str | None]] = set()


class ChecksumMismatch(RuntimeError):
    """A downloaded file's sha256 differs from the expected one; the file was deleted."""


class IncompleteDownload(OSError):
    """A downloaded file is shorter than the server announced; the file was deleted."""


def downloads_allowed(offline: bool = False) -> bool:
    """False when `offline` or HF_HUB_OFFLINE is set: nothing is fetched then."""
    return not offline and os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("", "0", "false")


def hub_dir(weights_dir: str | None) -> Path:
    return Path(weights_dir) if weights_dir else Path(torch.hub.get_dir())


def hub_repo_dir(repo: str, weights_dir: str | None) -> Path:
    """Where torch.hub unpacks code repo "owner/name:ref" (`<hub dir>/owner_name_ref`)."""
    owner_name, _, ref = repo.partition(":")
    return hub_dir(weights_dir) / "_".join([*owner_name.split("/"), ref or "main"])


def local_path(item: ModelFile, weights_dir: str | None = None) -> Path | None:
    """Where `item` is on disk (with its hub code repo, if it needs one), or None; never touches
    the network."""
    if not _hub_repo_present(item, weights_dir):
        return None
    return _file_on_disk(item, weights_dir)


def _hub_repo_present(item: ModelFile, weights_dir: str | None) -> bool:
    """True when `item` needs no hub code repo or its repo is unpacked."""
    return not item.hub_repo or (hub_repo_dir(item.hub_repo, weights_dir) / "hubconf.py").is_file()


def _file_on_disk(item: ModelFile, weights_dir: str | None) -> Path | None:
    if item.kind == "hf":
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(item.repo, item.filename, cache_dir=weights_dir)
        return Path(path) if isinstance(path, str) and os.path.isfile(path) else None
    path = url_destination(item, weights_dir)
    return path if path.is_file() else None


def url_destination(item: ModelFile, weights_dir: str | None) -> Path:
    return hub_dir(weights_dir) / item.subdir / item.filename


def location(item: ModelFile, weights_dir: str | None = None) -> str:
    """Human-readable cache location (for `status`)."""
    if item.kind == "hf":
        root = weights_dir or os.environ.get("HF_HUB_CACHE") or "HF cache"
        return f"{root}: {item.repo}/{item.filename}"
    return str(url_destination(item, weights_dir))


def fetch(item: ModelFile, weights_dir: str | None = None, progress: bool = True) -> Path:
    """Download `item` (no-op when present) and verify it; returns its path.
    Raises ChecksumMismatch (file deleted) or the library's network error."""
    path = _file_on_disk(item, weights_dir) or _download(item, weights_dir, progress)
    if not _hub_repo_present(item, weights_dir):
        _fetch_hub_repo(item.hub_repo, weights_dir)
    return path


def _download(item: ModelFile, weights_dir: str | None, progress: bool) -> Path:
    if item.kind == "hf":
        return _fetch_hf(item, weights_dir, progress)
    path = url_destination(item, weights_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = _mirrored(item.url)
    torch.hub.download_url_to_file(url, str(path), None, progress=progress)
    _check_size(path, url, item)  # a cut transfer is otherwise kept when no sha256 is known
    _verify(path, item.sha256, item)
    return path


def ensure(item: ModelFile, weights_dir: str | None, offline: bool) -> Path | None:
    """The file's path: already on disk, or downloaded now when downloads are allowed.
    None when missing and offline, or when the download failed (logged)."""
    found = local_path(item, weights_dir)
    if found is not None or not downloads_allowed(offline) or (item, weights_dir) in _FAILED:
        return found
    try:
        return fetch(item, weights_dir)
    except Exception as err:  # no network, server error, checksum: the metric reports n/c
        _FAILED.add((item, weights_dir))  # not retried for every edit of this process
        log.warning("fetching %s failed: %s", item.name, err)
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_hf(item: ModelFile, weights_dir: str | None, progress: bool) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    endpoint = os.environ.get("HF_ENDPOINT") or None
    expected = item.sha256
    if expected is None:  # the LFS sha256 the Hub reports (ETag of a git-LFS file)
        meta = get_hf_file_metadata(hf_hub_url(item.repo, item.filename, endpoint=endpoint))
        etag = (meta.etag or "").strip('"')
        expected = etag if len(etag) == 64 else None
    path = Path(
        hf_hub_download(item.repo, item.filename, cache_dir=weights_dir, endpoint=endpoint)
    )
    blob = path.resolve()  # the snapshot entry is a link to this blob
    try:
        _verify(path, expected, item)
    except ChecksumMismatch:
        blob.unlink(missing_ok=True)
        raise
    return path


def _verify(path: Path, expected: str | None, item: ModelFile) -> None:
    if expected is None:
        return
    actual = sha256_of(path)
    if not actual.startswith(expected.lower()):
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{item.name}: {item.filename} has sha256 {actual}, expected {expected}; "
            f"the file was deleted. Run `{item.fetch_command}` again."
        )


def _check_size(path: Path, url: str, item: ModelFile) -> None:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as r:
        announced = r.headers.get("Content-Length")
    if announced is not None and path.stat().st_size != int(announced):
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        raise IncompleteDownload(
            f"{item.name}: got {size} of {announced} bytes; the file was deleted. "
            f"Run `{item.fetch_command}` again."
        )


def _mirrored(url: str) -> str:
    """`url` on the HF mirror (HF_ENDPOINT) for Hub-hosted files, on KVLOCK_WEIGHTS_MIRROR
    (`<mirror>/<host>/<path>`) for the others, else unchanged."""
    endpoint, mirror = os.environ.get("HF_ENDPOINT"), os.environ.get(MIRROR_ENV)
    if endpoint and url.startswith(HF_URL):
        return endpoint.rstrip("/") + url[len(HF_URL):]
    if mirror:
        return f"{mirror.rstrip('/')}/{url.split('://', 1)[-1]}"
    return url


def _fetch_hub_repo(repo: str, weights_dir: str | None) -> None:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(hub_dir(weights_dir)))
    try:
        torch.hub.list(repo, trust_repo=True)  # downloads and unpacks the repo code
    finally:
        torch.hub.set_dir(previous)
