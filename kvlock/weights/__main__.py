"""`python -m kvlock.weights status` | `python -m kvlock.weights fetch [NAMES ...|--all]`."""

from __future__ import annotations

import argparse
import sys

from kvlock.weights.catalog import CATALOG, entries
from kvlock.weights.store import ChecksumMismatch, fetch, local_path, location


def status(weights_dir: str | None) -> list[str]:
    """One line per file: name | metric(s) | model | file | where | size | present/missing."""
    lines = []
    for item in CATALOG:
        path = local_path(item, weights_dir)
        size = f"{path.stat().st_size / 2**20:.1f} MiB" if path else "-"
        lines.append(
            f"{item.name} | {', '.join(item.metrics)} | {item.model} | {item.filename} | "
            f"{location(item, weights_dir)} | {size} | {'present' if path else 'missing'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvlock.weights", description=__doc__)
    parser.add_argument("--weights-dir", default=None, help="cache folder instead of the defaults")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="list every metric model file and whether it is present")
    get = sub.add_parser("fetch", help="download metric model files")
    get.add_argument("names", nargs="*", help="metric names (their files) or file names: "
                     f"{', '.join(i.name for i in CATALOG)}")
    get.add_argument("--all", action="store_true", help="every file in the list")
    args = parser.parse_args(argv)
    if args.command == "status":
        print("name | metric(s) | model | file | where | size | state")
        print("\n".join(status(args.weights_dir)))
        return 0
    if not args.names and not args.all:
        parser.error("name the files to fetch, or pass --all")
    try:
        items = list(CATALOG) if args.all else entries(args.names)
    except ValueError as err:
        parser.error(str(err))
    failed = 0
    for item in items:
        try:
            print(f"{item.name}: {fetch(item, args.weights_dir)}", flush=True)
        except (ChecksumMismatch, OSError, RuntimeError, ValueError) as err:
            failed += 1
            print(f"{item.name}: FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
