"""Score any edited video against its source with the harness metrics.

    python -m benchmarks.evaluate --source S --edited E --mask M \
        --source-prompt "..." --target-prompt "..." [--target-gt G] [--metrics a,b] [--stride N] \
        [--allow-random-weights] [--config conf/metrics/default.yaml] [--device D] [--json]

S, E, M, G: a folder of frames or a video file. Edited frames of another size are resized to the
source size; frame counts must match. Prints a table, or with --json one JSON object: the
result-row columns (NaN -> null; `metrics_not_computed` and `metrics_models` as objects).
Bad inputs or options end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "metrics" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--source", required=True, help="source video: frames folder or video file")
    parser.add_argument("--edited", required=True, help="edited video: frames folder or video file")
    parser.add_argument("--mask", required=True, help="edit-region masks: folder or video file")
    parser.add_argument("--source-prompt", default="", help="prompt describing the source video")
    parser.add_argument("--target-prompt", default="", help="prompt describing the edit")
    parser.add_argument("--target-gt", help="ground-truth edited video (synthetic edits)")
    parser.add_argument(
        "--metrics", help="comma-separated metric names (default: the config's list)"
    )
    parser.add_argument("--stride", type=int, help="evaluate every N-th frame (per-frame metrics)")
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="random models for missing weights (recorded)",
    )
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="metrics config yaml (default: %(default)s)"
    )
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    return parser.parse_args(argv)


def metrics_config(args: argparse.Namespace) -> dict:
    """The metrics config file with the command-line overrides applied."""
    node = OmegaConf.load(args.config)
    if "defaults" in node:  # a preset such as five.yaml: its keys over default.yaml
        node = OmegaConf.merge(OmegaConf.load(DEFAULT_CONFIG), {k: v for k, v in node.items()
                                                                 if k != "defaults"})
    cfg = OmegaConf.to_container(node, resolve=True)
    if args.metrics:
        cfg["names"] = [name.strip() for name in args.metrics.split(",") if name.strip()]
    if args.stride is not None:
        cfg["frame_stride"] = args.stride
    if args.allow_random_weights:
        cfg["allow_random_weights"] = True
    if args.device:
        cfg["device"] = args.device
    return cfg


def load_inputs(args: argparse.Namespace, mask_threshold: int = 127):
    """Read the clips and masks (gray value > `mask_threshold` = edit region; the metrics
    config's `mask_threshold`) into MetricInputs (raises DataError / ValueError)."""
    from kvlock.data.masks import binarize_mask
    from kvlock.data.video_io import is_palette_mask, read_frames, read_masks
    from kvlock.metrics import MetricInputs

    source = read_frames(args.source)
    mask, _ = binarize_mask(read_masks(args.mask), args.mask, threshold=mask_threshold,
                            palette=is_palette_mask(args.mask))
    return MetricInputs(
        source=source,
        edited=read_frames(args.edited),
        mask=mask,
        source_prompt=args.source_prompt,
        target_prompt=args.target_prompt,
        target_gt=read_frames(args.target_gt) if args.target_gt else None,
    )


def to_json(row: dict) -> str:
    decoded = {k: json.loads(row[k]) for k in ("metrics_not_computed", "metrics_models")}
    clean = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()
    }
    return json.dumps({**clean, **decoded}, indent=2)


def to_table(row: dict, info: dict) -> str:
    from tabulate import tabulate

    reasons = json.loads(row["metrics_not_computed"])
    lines = [
        [
            name,
            meta["label"],
            "higher" if meta["higher_is_better"] else "lower",
            f"{row[name]:.6g}",
            reasons.get(name, ""),
        ]
        for name, meta in info.items()
    ]
    table = tabulate(
        lines, headers=["metric", "label", "better", "value", "note"], disable_numparse=True
    )
    flags = [f"{k}: {v}" for k, v in row.items() if k.endswith("_capped") and v]
    extra = [f"capped frames (PSNR above the cap) - {', '.join(flags)}"] if flags else []
    if row["metrics_random_weights"]:
        extra.append(
            f"RANDOM WEIGHTS used (not comparable to published numbers): {row['metrics_models']}"
        )
    return "\n".join([table, *extra])


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # metric weights come from local caches only
    args = parse_args(argv)
    from kvlock.data.errors import DataError
    from kvlock.metrics import build_metrics, evaluate, metric_info

    try:
        cfg = metrics_config(args)
        metrics = build_metrics(cfg)
        inputs = load_inputs(args, cfg.get("mask_threshold", 127))
    except (DataError, ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    row = evaluate(inputs, metrics)
    print(to_json(row) if args.json else to_table(row, metric_info(metrics)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
