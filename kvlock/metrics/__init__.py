"""Metrics: one module per metric, a registry, `build_metrics(cfg)` and `evaluate(inputs, metrics)`.

See docs/contracts.md ("Metrics") and /work/shared/METRICS.md for the protocol each follows.
"""

from kvlock.metrics import (  # noqa: F401  (importing a metric module registers it)
    bg_lpips,
    bg_mse,
    bg_psnr,
    bg_psnr_bgonly,
    bg_ssim,
    clip_dir,
    clip_frame_consistency,
    clip_text,
    clip_text_edit,
    fg_lpips_gt,
    fg_psnr_gt,
    flicker,
    hpsv2,
    image_reward,
    laion_aes,
    oracle_color,
    oracle_edit,
    vbench_aq,
    vbench_bc,
    vbench_iq,
    vbench_ms,
    vbench_sc,
    warp_error,
)
from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings
from kvlock.metrics.cache import FeatureCache, shared_cache
from kvlock.metrics.registry import (
    available_metrics,
    build_metrics,
    evaluate,
    metric_info,
    register_metric,
)
from kvlock.metrics.weights import WeightsUnavailable

__all__ = [
    "FeatureCache",
    "Metric",
    "MetricInputs",
    "MetricResult",
    "MetricSettings",
    "WeightsUnavailable",
    "available_metrics",
    "build_metrics",
    "evaluate",
    "metric_info",
    "register_metric",
    "shared_cache",
]
