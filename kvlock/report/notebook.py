"""Notebook plumbing: parameters from the environment and figures shown as PNG under any backend."""

from __future__ import annotations

import io
import os
from pathlib import Path


def env_override(name: str, value):
    """`os.environ[name]` when set (and non-empty), else `value` (the notebook's parameter)."""
    return os.environ.get(name) or value


def show(fig, name: str | None = None, fig_dir: str | Path | None = None) -> None:
    """Display `fig` as a PNG (also under Agg, where plt.show() shows nothing), optionally save it
    as `<fig_dir>/<name>.png`, and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    if fig_dir and name:
        path = Path(fig_dir) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    plt.close(fig)
    display(Image(buffer.getvalue()))
