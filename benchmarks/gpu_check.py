"""One-command GPU check: every main method on the Wan2.1-1.3B architecture (seeded random
weights, no download) at 480x832x33 frames, bf16, with the paper's figures beside the numbers.

    bash benchmarks/gpu_check.sh [--dry-run] [--results FILE] [--json FILE] [--budget-s S]

Per method: seconds per denoising step (median over `--timed-steps` steps after one warm-up step,
on a grid of warm-up + timed steps: a step's cost does not depend on the grid's length), peak
device memory, and the K/V store bytes, measured on that grid and given by the formula for the
50-step run. Before each method the memory pre-check (kvlock/engine/memory.py) decides what fits:
as configured, else the K/V store in bfloat16, then float8_e4m3fn, then fewer frames; the table
says which ran. Methods left when `--budget-s` is spent are listed as not run. `--dry-run` runs
the same code on CPU at a tiny size and model (for the tests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN_METHODS = ["kvlock", "hard_lock", "full_injection", "fixed_cfg", "fixed_fusion", "cfg_zero_star", "apg",
                "reconstruct"]
SECTION_BEGIN, SECTION_END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
GIB = 1024**3


class StepsDone(Exception):
    """Raised from the step callback once enough steps are timed."""


def fallbacks(method: str, frames: int):
    """Overrides to try, in order, until the memory pre-check passes."""
    yield [], frames
    yield ["method.kv_dtype=bfloat16"], frames
    yield ["method.kv_dtype=float8_e4m3fn"], frames
    for fewer in range(frames - 4, 0, -4):
        yield ["method.kv_dtype=float8_e4m3fn"], fewer


def time_steps(backbone, sample, cfg, timed: int, device) -> dict:
    """Run one edit for 1 + `timed` steps; -> s/it (median), peak memory, K/V store bytes."""
    import torch

    from kvlock.engine.editor import run_edit

    stamps, info = [], {}

    def callback(state):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())
        if len(stamps) > timed:
            raise StepsDone

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    from benchmarks.perf import RSSSampler

    sampler = RSSSampler()
    sampler.start()
    before = RSSSampler.rss()
    try:
        out = run_edit(backbone, sample, cfg, seed=0, callback=callback)
        info["kv_store_bytes"] = out.stats["kv_store_bytes"]
    except StepsDone:
        pass
    peak_host = sampler.stop() - before
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    info["s_per_it"] = statistics.median(gaps) if gaps else float("nan")
    info["peak_memory_gb"] = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_host) / GIB
    return info


def run(args) -> dict:
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --dry-run for the CPU smoke run)")
    from omegaconf import OmegaConf

    from benchmarks.scale import MODEL, PAPER, QUICK, make_sample
    from kvlock.backbones import build_backbone
    from kvlock.engine.memory import ResourceError, check_fits, estimate_edit
    from kvlock.engine.token_mask import token_mask
    from kvlock.methods import compose_method

    if args.dry_run:
        overrides, (frames, height, width) = QUICK.model_overrides, (9, 64, 64)
    else:
        overrides, (frames, height, width) = {"device": "cuda", "dtype": "bfloat16"}, (33, 480, 832)
    start = time.perf_counter()
    backbone = build_backbone(OmegaConf.merge(OmegaConf.load(MODEL), overrides))
    device = backbone.device
    build_s = time.perf_counter() - start
    rows = {}
    for method in args.methods:
        if time.perf_counter() - start > args.budget_s:
            rows[method] = {"status": "not run: time budget spent"}
            continue
        for extra, n_frames in fallbacks(method, frames):
            cfg = compose_method(method, extra, steps=1 + args.timed_steps)
            sample = make_sample(n_frames, height, width)
            fg_fraction = float(token_mask(sample.mask, backbone.geometry).float().mean())
            try:
                est = check_fits(backbone, cfg, n_frames, height, width, fg_fraction)
            except ResourceError:
                continue
            break
        else:
            rows[method] = {"status": "does not fit at any size tried"}
            continue
        full = compose_method(method, extra, steps=args.full_steps)
        kv_full = estimate_edit(backbone, full, n_frames, height, width, fg_fraction).kv_store
        print(f"[gpu_check] {method} at {n_frames}x{height}x{width} {extra or ''}", file=sys.stderr, flush=True)
        try:
            measured = time_steps(backbone, sample, cfg, args.timed_steps, device)
        except Exception as err:  # one method failing is a failed row; the check goes on
            rows[method] = {"status": f"failed: {type(err).__name__}: {err}"}
            continue
        rows[method] = {"status": "ok", "size": f"{n_frames}x{height}x{width}", "overrides": extra,
                        "estimate_gb": est.total / GIB, "kv_store_gb_50_steps_formula": kv_full / GIB, **measured}
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)",
        "dry_run": args.dry_run, "model": "Wan2.1-T2V-1.3B architecture, seeded random weights"
        if not args.dry_run else "tiny Wan (dry run)",
        "dtype": str(backbone.dtype).replace("torch.", ""),
        "params": sum(p.numel() for p in backbone.transformer.parameters()),
        "size": f"{frames}x{height}x{width}", "timed_steps": args.timed_steps, "full_steps": args.full_steps,
        "build_s": build_s, "wall_s": time.perf_counter() - start, "methods": rows, "paper": PAPER,
    }


def markdown(report: dict) -> str:
    paper = report["paper"]
    lines = [
        SECTION_BEGIN,
        "## GPU check (`bash benchmarks/gpu_check.sh`)",
        "",
        f"{report['device']}, {report['model']} ({report['params']:,} parameters, {report['dtype']}), target "
        f"{report['size']}; s/it is the median of {report['timed_steps']} steps after a warm-up step; the K/V "
        f"store column is the formula for the {report['full_steps']}-step run (exact: the store equals it). "
        f"Wall {report['wall_s']:.0f} s. Paper (A100): KV-Lock {paper['kvlock_s_per_it_a100']} s/it, "
        f"CFG-Zero* {paper['cfg_zero_star_s_per_it_a100']} s/it, ≈ {paper['extra_memory_gb']:.0f} GB extra memory.",
        "",
        "| method | ran at | s/it | paper s/it | peak memory GiB | K/V store GiB (50 steps) | status |",
        "|---|---|---|---|---|---|---|",
    ]
    paper_s = {"kvlock": paper["kvlock_s_per_it_a100"], "cfg_zero_star": paper["cfg_zero_star_s_per_it_a100"]}
    for method, row in report["methods"].items():
        if row["status"] != "ok":
            lines.append(f"| {method} | - | - | {paper_s.get(method, '-')} | - | - | {row['status']} |")
            continue
        ran = row["size"] + (" " + " ".join(row["overrides"]) if row["overrides"] else "")
        lines.append(f"| {method} | {ran} | {row['s_per_it']:.3f} | {paper_s.get(method, '-')} | "
                     f"{row['peak_memory_gb']:.2f} | {row['kv_store_gb_50_steps_formula']:.3g} | ok |")
    rows = report["methods"]
    if rows.get("kvlock", {}).get("status") == "ok" and rows.get("cfg_zero_star", {}).get("status") == "ok":
        ratio = rows["kvlock"]["s_per_it"] / rows["cfg_zero_star"]["s_per_it"]
        lines += ["", f"kvlock ÷ cfg_zero_star s/it: **{ratio:.2f}** (paper {paper['kvlock_vs_cfg_zero_star']:.2f})."]
    lines += ["", SECTION_END]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    from benchmarks.scale import replace_section

    replace_section(path, text, SECTION_BEGIN, SECTION_END)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model and size (smoke test)")
    parser.add_argument("--results", type=Path, help="markdown file whose GPU section is (re)written "
                                                     "(default benchmarks/RESULTS.md; none in a dry run)")
    parser.add_argument("--json", type=Path, help="write the machine-readable report here")
    parser.add_argument("--methods", nargs="+", default=MAIN_METHODS)
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--full-steps", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting methods after this")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    results = args.results or (None if args.dry_run else REPO / "benchmarks" / "RESULTS.md")
    if results:
        write_section(results, markdown(report))
        print(f"[gpu_check] wrote {results}", file=sys.stderr)
    print(json.dumps({m: r.get("s_per_it", r["status"]) for m, r in report["methods"].items()}))
    return report


if __name__ == "__main__":
    main()
