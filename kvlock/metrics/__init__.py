"""Metrics: one module per metric, a registry, `build_metrics(cfg)` and `evaluate(inputs, metrics)`.

See docs/contracts.md ("Metrics") and /work/shared/METRICS.md for the protocol each follows.
"""

# Importing a metric module registers it. Each is imported by its full name, so the package
# depends on its modules and never on itself.
import kvlock.metrics.bg_lpips  # noqa: F401
import kvlock.metrics.bg_mse  # noqa: F401
import kvlock.metrics.bg_psnr  # noqa: F401
import kvlock.metrics.bg_psnr_bgonly  # noqa: F401
import kvlock.metrics.bg_ssim  # noqa: F401
import kvlock.metrics.clip_dir  # noqa: F401
import kvlock.metrics.clip_frame_consistency  # noqa: F401
import kvlock.metrics.clip_text  # noqa: F401
import kvlock.metrics.clip_text_edit  # noqa: F401
import kvlock.metrics.fg_lpips_gt  # noqa: F401
import kvlock.metrics.fg_psnr_gt  # noqa: F401
import kvlock.metrics.flicker  # noqa: F401
import kvlock.metrics.hpsv2  # noqa: F401
import kvlock.metrics.image_reward  # noqa: F401
import kvlock.metrics.laion_aes  # noqa: F401
import kvlock.metrics.oracle_color  # noqa: F401
import kvlock.metrics.oracle_edit  # noqa: F401
import kvlock.metrics.vbench_aq  # noqa: F401
import kvlock.metrics.vbench_bc  # noqa: F401
import kvlock.metrics.vbench_iq  # noqa: F401
import kvlock.metrics.vbench_ms  # noqa: F401
import kvlock.metrics.vbench_sc  # noqa: F401
import kvlock.metrics.warp_error  # noqa: F401
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
