"""`python -m benchmarks.perf_backbones`: hook overhead and fg-only speed-up per backbone.

The same measurements as `benchmarks.perf` sections 1 and 2 (wall / (NFE × plain forward) for
each method; full-token vs fg-only hard lock with the inversion cached), run for each tiny
backbone side by side in one process, written as a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from benchmarks.perf import Sizes, measure_fg_only, measure_overhead
from kvlock.backbones import build_backbone
from kvlock.experiment.atomic import write_text

REPO = Path(__file__).resolve().parents[1]
MODELS = ["wan_tiny", "cogvideox_tiny", "hunyuan_tiny"]


def measure(models: list[str], sizes: Sizes, methods: list[str]) -> dict:
    results = {}
    for model in tqdm(models, desc="backbones", unit="model"):
        backbone = build_backbone(OmegaConf.load(REPO / "conf" / "model" / f"{model}.yaml"))
        _, forward_s, overhead = measure_overhead(backbone, sizes, methods)
        results[model] = {"forward_s": forward_s, "overhead": overhead, "fg_only": measure_fg_only(backbone, sizes)}
    return results


def markdown(results: dict, sizes: Sizes, methods: list[str]) -> str:
    areas = list(next(iter(results.values()))["fg_only"])
    lines = [
        "# Performance per backbone",
        "",
        f"Measured by `python -m benchmarks.perf_backbones` on {torch.get_num_threads()} CPU thread(s), clip "
        f"{sizes.frames}x{sizes.height}x{sizes.width}, {sizes.steps} steps, median (min–max) of "
        f"{sizes.repeats} interleaved repeat(s) after a warm-up. Overhead: wall / (NFE × plain forward), "
        "the plain forward timed in the same repeat; fg-only: full-token / fg-only hard-lock edit loop "
        "(inversion cached).",
        "",
        "| backbone | plain forward | " + " | ".join(f"overhead {m}" for m in methods) + " | "
        + " | ".join(f"fg-only ×, area {a}" for a in areas) + " |",
        "|---" * (2 + len(methods) + len(areas)) + "|",
    ]
    for model, r in results.items():
        cells = [f"{r['forward_s'] * 1000:.1f} ms"] + [_median_range(r["overhead"][m]) for m in methods]
        cells += [f"{_median_range(r['fg_only'][a]['spread'])} (fg {r['fg_only'][a]['fg_token_fraction']:.2f})"
                  for a in areas]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _median_range(spread: dict) -> str:
    return f"{spread['median']:.2f} ({spread['min']:.2f}–{spread['max']:.2f})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--methods", nargs="+", default=["kvlock", "hard_lock"])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64, help="height = width")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS_backbones.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = Sizes(args.frames, args.size, args.size, args.steps, args.repeats, (2, 4))
    results = measure(args.models, sizes, args.methods)
    text = markdown(results, sizes, args.methods)
    write_text(args.results, text)
    print(text)
    return results


if __name__ == "__main__":
    main()
