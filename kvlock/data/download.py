"""HTTP download with resume, a progress bar and a SHA-256 check; safe archive unpacking."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(Exception):
    """A download that could not finish: `str(err)` names the URL or file and the problem."""


class Unreachable(DownloadError):
    """The server could not be reached at all (offline, DNS, refused)."""


@dataclass(frozen=True)
class Remote:
    """What a HEAD request says about a file: size in bytes and SHA-256, when the server tells."""

    url: str
    size: int | None
    sha256: str | None


def probe(url: str, timeout: float = 30) -> Remote:
    """HEAD `url` without following redirects, as the Hugging Face hub's own client does: the
    first answer carries the file's SHA-256 (X-Linked-Etag / ETag of an LFS file) and size."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, method="HEAD")
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code not in (301, 302, 303, 307, 308):
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
        response = err
    except (urllib.error.URLError, OSError) as err:
        raise Unreachable(f"{url}: cannot connect ({_reason(err)})") from err
    headers = response.headers
    etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").strip()
    etag = etag.removeprefix("W/").strip('"').lower()
    size = headers.get("X-Linked-Size") or headers.get("Content-Length")
    return Remote(url, int(size) if size and size.isdigit() else None, etag if SHA256.match(etag) else None)


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Fetch `url` into `dest` atomically; a `<dest>.part` left by a cut download is resumed
    (HTTP Range). With `sha256` the finished file must match it, else it is deleted and
    DownloadError raised."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (size is None or have == size):
            response = None  # the part file is already complete
        else:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        raise Unreachable(f"{url}: cannot connect ({_reason(err)})") from err
    if response is not None:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else size
        with response, open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
            disable=not progress or None,
        ) as bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as err:
                raise DownloadError(
                    f"{url}: connection lost after {part.stat().st_size} bytes ({_reason(err)}); "
                    f"run again to resume from {part}"
                ) from err
    got = part.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"{url}: got {got} of {size} bytes; run again to resume from {part}")
    if sha256 is not None:
        digest = file_sha256(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(f"{dest.name}: SHA-256 {digest} differs from {sha256} ({url}); deleted")
    os.replace(part, dest)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def unpack(archive: Path, into: Path) -> list[str]:
    """Extract a .zip / .tar(.gz|.bz2|.xz) into `into`; refuses members that leave it. Returns
    the top-level names extracted. Extraction goes to a temporary folder first, then moves in."""
    into.mkdir(parents=True, exist_ok=True)
    staging = into / f".unpack-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                _check_members(archive, zipped.namelist())
                zipped.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                _check_members(archive, tarred.getnames())
                tarred.extractall(staging, filter="data")
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: damaged archive ({err})") from err
    names = []
    for item in sorted(staging.iterdir()):
        _merge(item, into / item.name)
        names.append(item.name)
    shutil.rmtree(staging, ignore_errors=True)
    return names


def _merge(source: Path, target: Path) -> None:
    """Move `source` to `target`, merging folders that already exist."""
    if source.is_dir() and target.is_dir():
        for child in source.iterdir():
            _merge(child, target / child.name)
        return
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def _check_members(archive: Path, names: list[str]) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DownloadError(f"{archive}: member '{name}' would be written outside the folder")


def _reason(err: Exception) -> str:
    reason = getattr(err, "reason", None) or err
    return str(reason) or type(err).__name__


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
