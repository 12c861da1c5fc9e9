"""Method knobs read back from each result row's resolved config (the ablation's τ, W, κ, b)."""

from __future__ import annotations

import json

import pandas as pd

# KV-Lock knobs of the ablation notebook: display name -> dotted key in the resolved config.
KNOBS = {
    "τ": "method.detector.tau",
    "W": "method.detector.window",
    "κ": "method.detector.active_last",
    "b": "method.guidance.omega_max_ratio",
}


def config_value(config: str | dict, dotted: str):
    """`config["a"]["b"]` for "a.b" from a row's resolved config (JSON or dict); None if absent."""
    node = json.loads(config) if isinstance(config, str) else config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def knob_frame(rows: pd.DataFrame, knobs: dict[str, str] = KNOBS) -> pd.DataFrame:
    """`rows` with one column per knob (display name), read from each row's config JSON."""
    out = rows.copy()
    for name, dotted in knobs.items():
        out[name] = [config_value(c, dotted) for c in out["config"]]
    return out


def swept(frame: pd.DataFrame, knob: str) -> bool:
    """Whether `knob` takes more than one value within at least one method."""
    values = frame[[knob, "method"]].dropna()
    return bool(len(values)) and bool((values.groupby("method")[knob].nunique() > 1).any())
