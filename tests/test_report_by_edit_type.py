"""The FiVE-Bench table: mean per edit type, then the unweighted mean over the types."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kvlock.report.by_edit_type import aggregate_by_edit_type
from kvlock.report.collect import Collection
from kvlock.report.tables import TABLES, build_table


def test_mean_over_types_weights_each_type_once():
    """Three edits of one type and one of another: the overall value is the mean of the two type
    means (FiVE's avg_metrics_in_csv.py), not the mean of the four edits."""
    rows = pd.DataFrame({
        "config_hash": ["h"] * 5, "method": ["hard_lock"] * 5,
        "overrides": [json.dumps([])] * 5,
        "edit_id": ["a", "b", "c", "d", "e"],
        "edit_type": ["Color Alteration"] * 3 + ["Object Removal"] * 2,
        "status": ["ok", "ok", "ok", "ok", "failed"],
        "bg_psnr": [20.0, 22.0, 24.0, 30.0, None],
        "seconds": [1.0] * 5, "steps": [2] * 5,
    })
    info = {"bg_psnr": {"higher_is_better": True}}

    agg = aggregate_by_edit_type(Collection(rows, info, [])).set_index("label")

    assert list(agg.index) == ["hard_lock · Color Alteration", "hard_lock · Object Removal",
                               "hard_lock · mean over types"]
    assert agg["bg_psnr"].tolist() == pytest.approx([22.0, 30.0, 26.0])  # edits' mean: 24.0
    assert agg["n_ok"].tolist() == [3, 1, 4] and agg["n_total"].tolist() == [3, 2, 5]
    table = build_table(agg.reset_index(), TABLES["five"], info, {})
    assert [name for name, _, _ in table.rows][-1] == "Hard lock (KV-Edit) · mean over types"
    assert [cells[0].text for _, _, cells in table.rows] == ["22.00", "30.00", "26.00"]
    assert table.rows[-1][1] == "4/5"
