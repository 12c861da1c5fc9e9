"""Metric registry, `build_metrics` from config, `evaluate` into result-row columns."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
from collections.abc import Callable, Mapping

from omegaconf import DictConfig, OmegaConf

from kvlock.metrics.base import Metric, MetricInputs, MetricResult, MetricSettings

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Metric]] = {}
_SETTINGS = {f.name for f in dataclasses.fields(MetricSettings)}


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator: `@register_metric("bg_psnr")` makes the metric buildable by name."""

    def decorate(cls: type[Metric]) -> type[Metric]:
        if name in _REGISTRY:
            raise ValueError(f"Metric '{name}' is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_metrics() -> list[str]:
    return sorted(_REGISTRY)


def build_metrics(cfg: Mapping) -> list[Metric]:
    """Metrics from a `conf/metrics/*.yaml` mapping.

    Keys: `names` (list), `options` ({name: {option: value}}; an option that is a settings field
    overrides it for that metric only) and the `MetricSettings` fields. Unknown names, keys or
    options raise ValueError.
    """
    cfg = _plain(cfg)
    unknown = set(cfg) - _SETTINGS - {"names", "options"}
    if unknown:
        raise ValueError(
            f"Unknown metrics config key(s) {sorted(unknown)}. Valid: names, options, {', '.join(sorted(_SETTINGS))}"
        )
    names = list(cfg.get("names") or [])
    options = cfg.get("options") or {}
    for name in [*names, *options]:
        if name not in _REGISTRY:
            raise ValueError(
                f"Unknown metric '{name}'. Available: {', '.join(available_metrics())}"
            )
    settings = MetricSettings(**{k: v for k, v in cfg.items() if k in _SETTINGS})
    return [_build(name, settings, dict(options.get(name) or {})) for name in names]


def evaluate(inputs: MetricInputs, metrics: list[Metric]) -> dict:
    """Result-row columns for one edit.

    `<name>`: float per metric (NaN when not computed); the metrics' flags (e.g. `bg_psnr_capped`);
    `metrics_not_computed`: JSON {name: reason}; `metrics_random_weights`: any random-weight model
    ran; `metrics_models`: JSON {name: model that ran} for model-based metrics. A metric that
    raises is recorded as not computed ("failed: ...") and the others still run.
    """
    row: dict = {}
    reasons, models, random_weights = {}, {}, False
    for metric in metrics:
        try:
            result = metric.compute(inputs)
        except Exception as err:  # one broken metric must not lose the row
            log.exception("metric %s failed", metric.name)
            result = MetricResult.not_computed(f"failed: {type(err).__name__}: {err}")
        row[metric.name] = float(result.value)
        row.update(result.flags)
        if result.reason is not None or math.isnan(result.value):
            reasons[metric.name] = result.reason or "not computed"
        if result.model is not None:
            models[metric.name] = result.model
        random_weights |= result.random_weights
    row["metrics_not_computed"] = json.dumps(reasons, sort_keys=True)
    row["metrics_random_weights"] = random_weights
    row["metrics_models"] = json.dumps(models, sort_keys=True)
    return row


def metric_info(metrics: list[Metric]) -> dict[str, dict]:
    """{name: {higher_is_better, version, variant, label, scale}} for reports."""
    return {
        m.name: {
            "higher_is_better": m.higher_is_better,
            "version": m.version,
            "variant": m.variant,
            "label": m.label,
            "scale": m.scale,
        }
        for m in metrics
    }


def _build(name: str, settings: MetricSettings, options: dict) -> Metric:
    cls = _REGISTRY[name]
    overrides = {k: options.pop(k) for k in list(options) if k in _SETTINGS}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "settings"}
    for key in options:
        if key not in accepted:
            valid = ", ".join(sorted(accepted | _SETTINGS))
            raise ValueError(f"Metric '{name}' has no option '{key}'. Valid: {valid}")
    return cls(dataclasses.replace(settings, **overrides), **options)


def _plain(cfg: Mapping) -> dict:
    """A plain dict from a dict or an OmegaConf node."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
