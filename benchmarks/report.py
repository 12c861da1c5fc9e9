"""`python -m benchmarks.report DIR`: paper-style tables of a run dir or a whole sweep dir.

    python -m benchmarks.report multirun/demo/2026-01-01_12-00-00 --table kvlock_main
    python -m benchmarks.report outputs/ --table auto --format latex --out table.tex --plot pareto.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kvlock.report.build import TABLE_NAMES, Report
from kvlock.report.render import FORMATS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a run dir or a sweep dir (searched recursively)")
    parser.add_argument("--table", choices=TABLE_NAMES, default="auto",
                        help="paper layout, or auto: every metric column present (default)")
    parser.add_argument("--format", choices=FORMATS, default="markdown")
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    parser.add_argument("--plot", type=Path, help="write the Pareto plot (PNG) here")
    parser.add_argument("--plot-axes", default="bg_psnr,clip_text", metavar="X,Y",
                        help="metrics of the Pareto plot (default: bg_psnr,clip_text)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = Report.load(args.dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = report.text(args.table, args.format)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    if args.plot:
        x, _, y = args.plot_axes.partition(",")
        try:
            report.plot(args.plot, x, y)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
