"""Fetch a public editing benchmark into DIR in the layout its loader reads.

    python -m kvlock.data.fetch five_bench --root DIR [--with-videos] [--endpoint URL]
    python -m kvlock.data.fetch pie_bench --root DIR (--url URL | --archive FILE)
    python -m kvlock.data.fetch vace_benchmark --root DIR [--endpoint URL]

FiVE-Bench files come from the Hugging Face hub's resolve URLs (resumable; LFS files checked
against the SHA-256 the hub reports) and its zips are unpacked in place, as its INSTALL.md does.
PIE-Bench is handed out through a form, so it takes the link or archive the form gives.
VACE-Benchmark is a hub snapshot (huggingface_hub). Files already in DIR are kept, so a set
downloaded by hand is checked and unpacked the same way. Offline, the command says exactly
what to download and where to put it (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kvlock.data.download import DownloadError, Unreachable, download, file_sha256, probe, unpack

RECORD = ".kvlock-fetch.json"  # per root: what was fetched, from where, with which SHA-256


@dataclass(frozen=True)
class HubFiles:
    """Files of a hub dataset repo: fetched to DIR/<path>; `archives` are unpacked into DIR."""

    repo: str
    files: tuple[str, ...]
    archives: tuple[str, ...]
    layout: tuple[str, ...]  # paths that must exist in DIR afterwards


FIVE = "LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark"
FIVE_FILES = HubFiles(
    repo=FIVE,
    files=(*(f"edit_prompt/edit{i}_FiVE.json" for i in range(1, 7)), "images.zip", "bmasks.zip"),
    archives=("images.zip", "bmasks.zip"),
    layout=("edit_prompt", "images", "bmasks"),
)
PIE_FORM = "https://forms.gle/hVMkTABb4uvZVjme9"  # cure-lab/PnPInversion README, "Benchmark Download"
PIE_LAYOUT = ("mapping_file.json", "annotation_images")
VACE = "ali-vilab/VACE-Benchmark"
VACE_LAYOUTS = ("assets/examples", "data")  # either published layout (kvlock.data.vace_benchmark)


def hub_url(endpoint: str, repo: str, path: str, revision: str = "main") -> str:
    return f"{endpoint.rstrip('/')}/datasets/{repo}/resolve/{revision}/{path}"


def fetch_hub_files(spec: HubFiles, root: Path, endpoint: str, progress: bool = True) -> list[str]:
    """Download the missing files of `spec`, unpack its archives, check the layout; returns
    what was done, one line per file."""
    done, record = [], _read_record(root)
    for path in spec.files:
        dest = root / path
        if dest.exists():
            done.append(f"{path}: present, kept")
            continue
        url = hub_url(endpoint, spec.repo, path)
        remote = probe(url)
        download(url, dest, sha256=remote.sha256, size=remote.size, progress=progress)
        digest = file_sha256(dest)
        record[path] = {"url": url, "sha256": digest, "size": dest.stat().st_size,
                        "checked": remote.sha256 is not None}
        _write_record(root, record)
        done.append(f"{path}: downloaded, SHA-256 {digest}" + (" (checked)" if remote.sha256 else ""))
    for name in spec.archives:
        stamp = f"{file_sha256(root / name)}:{(root / name).stat().st_size}"
        if record.get(name, {}).get("unpacked") == stamp:
            done.append(f"{name}: already unpacked")
            continue
        names = unpack(root / name, root)
        record.setdefault(name, {})["unpacked"] = stamp
        _write_record(root, record)
        done.append(f"{name}: unpacked {', '.join(names)}")
    _check_layout(root, spec.layout)
    return done


def fetch_archive(root: Path, layout: tuple[str, ...], url: str | None, archive: Path | None,
                  progress: bool = True) -> list[str]:
    """Download (or take) one archive, unpack it and lift the folder holding `layout[0]` into
    `root` (archives often wrap the set in a top folder)."""
    done = []
    if url:
        archive = root / ".downloads" / (Path(url.split("?")[0]).name or "archive.zip")
        if not archive.exists():
            download(url, archive, sha256=probe(url).sha256, progress=progress)
        done.append(f"{archive.name}: downloaded, SHA-256 {file_sha256(archive)}")
    staging = root / ".unpacked"
    shutil.rmtree(staging, ignore_errors=True)
    unpack(Path(archive), staging)
    found = sorted(staging.rglob(layout[0]), key=lambda p: len(p.parts))
    if not found:
        raise DownloadError(f"{archive}: no {layout[0]} inside (is this the right archive?)")
    for item in found[0].parent.iterdir():
        target = root / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)
    done.append(f"{Path(archive).name}: unpacked into {root}")
    _check_layout(root, layout)
    return done


def fetch_snapshot(repo: str, root: Path, endpoint: str) -> list[str]:
    """The whole hub dataset repo into `root` (huggingface_hub: resumable, with progress bars)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot_download(repo, repo_type="dataset", local_dir=root, endpoint=endpoint)
    except LocalEntryNotFoundError as err:
        raise Unreachable(f"{endpoint}: cannot reach the hub for {repo} ({err})") from err
    return [f"{repo}: snapshot in {root}"]


def offline_help(name: str, root: Path, endpoint: str) -> str:
    """Exactly what to download by hand and where to put it."""
    if name == "five_bench":
        lines = [f"Download these files of {FIVE} and put each at the path shown:"]
        lines += [f"  {hub_url(endpoint, FIVE, p)}\n    -> {root / p}" for p in FIVE_FILES.files]
        lines.append(f"then run again: python -m kvlock.data.fetch five_bench --root {root}"
                     " (keeps the files, unpacks images.zip and bmasks.zip, checks the layout)")
    elif name == "pie_bench":
        lines = [f"PIE-Bench is handed out through a form: {PIE_FORM}",
                 "Fill it in, download the archive it links to, then run:",
                 f"  python -m kvlock.data.fetch pie_bench --root {root} --archive /path/to/archive.zip",
                 f"(or --url <the link>). It unpacks so that {root / 'mapping_file.json'} and "
                 f"{root / 'annotation_images'}/ exist."]
    else:
        lines = [f"Download the dataset repo {VACE} from {endpoint}/datasets/{VACE}, e.g.",
                 f"  huggingface-cli download {VACE} --repo-type dataset --local-dir {root}",
                 "on a machine with network access, and copy the folder to "
                 f"{root}; then run this command again."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvlock.data.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=("five_bench", "pie_bench", "vace_benchmark"))
    parser.add_argument("--root", type=Path, required=True, help="folder to fetch into")
    parser.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT", "https://huggingface.co"),
                        help="Hugging Face hub endpoint (default: $HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--with-videos", action="store_true", help="FiVE-Bench: also videos.zip")
    parser.add_argument("--url", help="PIE-Bench: the archive link the request form gives")
    parser.add_argument("--archive", type=Path, help="PIE-Bench: an archive already downloaded")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    root = args.root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.name == "five_bench":
            spec = FIVE_FILES
            if args.with_videos:
                spec = HubFiles(spec.repo, (*spec.files, "videos.zip"), (*spec.archives, "videos.zip"),
                                (*spec.layout, "videos"))
            done = fetch_hub_files(spec, root, args.endpoint, progress=not args.no_progress)
        elif args.name == "pie_bench":
            if not args.url and not args.archive:
                if all((root / p).exists() for p in PIE_LAYOUT):
                    done = [f"{root}: PIE-Bench layout present"]
                else:
                    print(offline_help("pie_bench", root, args.endpoint), file=sys.stderr)
                    return 2
            else:
                done = fetch_archive(root, PIE_LAYOUT, args.url, args.archive, not args.no_progress)
        elif any((root / p).is_dir() for p in VACE_LAYOUTS):
            done = [f"{root}: VACE-Benchmark layout present, kept"]
        else:
            done = fetch_snapshot(VACE, root, args.endpoint)
    except Unreachable as err:
        print(f"error: {err}\n\n{offline_help(args.name, root, args.endpoint)}", file=sys.stderr)
        return 2
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(done))
    print(f"{args.name} ready in {root}: dataset={args.name} dataset.root={root}")
    return 0


def _check_layout(root: Path, layout: tuple[str, ...]) -> None:
    missing = [p for p in layout if not (root / p).exists()]
    if missing:
        raise DownloadError(f"{root}: layout incomplete, missing {', '.join(missing)}")


def _read_record(root: Path) -> dict:
    path = root / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def _write_record(root: Path, record: dict) -> None:
    tmp = root / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, root / RECORD)


if __name__ == "__main__":
    sys.exit(main())
