"""Reports: collection and aggregation of real sweep results, paper layouts, best marks, n/c
footnotes, LaTeX / CSV output, the Pareto plot and the CLI."""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest
from conftest import run_module

from benchmarks.report import main as report_main
from kvlock.report.build import Report
from kvlock.report.plots import pareto_front
from kvlock.report.render import render
from kvlock.report.tables import TABLES, build_table


def test_aggregates_are_nan_means_over_ok_edits(tiny_sweep):
    report = Report.load(tiny_sweep.dir)
    agg = report.aggregated.set_index("method")
    assert sorted(agg.index) == ["hard_lock", "kvlock"] and (agg.n_ok == 2).all() and (agg.n_total == 2).all()
    for path in tiny_sweep.dir.glob("*/results.parquet"):
        rows = pd.read_parquet(path)
        method = rows.method[0]
        assert agg.loc[method, "bg_psnr"] == pytest.approx(rows.bg_psnr.mean(), rel=1e-12)
        assert agg.loc[method, "sec_per_step"] == pytest.approx((rows.seconds / 4).mean(), rel=1e-12)
    csv = pd.read_csv(io.StringIO(report.text("kvlock_main", "csv"))).set_index("method")
    assert csv.loc["Hard lock (KV-Edit)", "PSNR"] == pytest.approx(agg.loc["hard_lock", "bg_psnr"], rel=1e-9)
    assert csv["SC"].isna().all()  # not computed: empty, never a number


def test_paper_layout_marks_best_and_footnotes_what_was_not_computed(tiny_sweep):
    text = Report.load(tiny_sweep.dir).text("kvlock_main")
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "Method", "Edits", "SC ↑", "BC ↑", "MS ↑", "AQ ↑", "IQ ↑", "Avg ↑", "SSIM ↑", "PSNR ↑", "s/it ↓"]
    assert "MS: not computed: vbench_ms is not in these runs' metric set" in text
    assert "SC: not computed: vbench_sc is not in these runs' metric set" in text
    assert "Avg: not computed: needs all of SC, BC, MS, AQ, IQ" in text
    assert text.count("**") >= 2 * 3  # one best per valued column (SSIM, PSNR, s/it)
    auto = Report.load(tiny_sweep.dir).text("auto")
    info = Report.load(tiny_sweep.dir).collection.metric_info
    assert info and all(meta["label"] in auto for meta in info.values())


def test_best_follows_direction_ignores_reference_rows_and_marks_ties():
    agg = pd.DataFrame({
        "label": ["kvlock", "hard_lock", "apg", "reconstruct"],
        "method": ["kvlock", "hard_lock", "apg", "reconstruct"],
        "n_ok": [2, 2, 2, 2], "n_total": [2, 2, 2, 2],
        "bg_psnr": [30.0, 31.0, 31.0, 90.0], "bg_mse": [2e-4, 1e-4, 3e-4, 0.0],
        "bg_lpips": [float("nan"), 0.1, 0.2, 0.0], "sec_per_step": [1.0, 2.0, 3.0, 0.1],
    })
    info = {"bg_psnr": {"higher_is_better": True}, "bg_mse": {"higher_is_better": False},
            "bg_lpips": {"higher_is_better": False}}
    table = build_table(agg, TABLES["kvedit"], info, {"bg_lpips": "failed: boom"})
    names = [name for name, _, _ in table.rows]
    assert names == ["Hard lock (KV-Edit)", "Codec reconstruction (floor)", "apg", "kvlock"]  # spec order first
    cells = {name: {c.header: cell for c, cell in zip(table.columns, row)} for name, _, row in table.rows}
    assert cells["Hard lock (KV-Edit)"]["PSNR"].best and cells["apg"]["PSNR"].best  # tie at 31.00
    assert not cells["Codec reconstruction (floor)"]["PSNR"].best and not cells["kvlock"]["PSNR"].best
    assert cells["Hard lock (KV-Edit)"]["MSE×10⁴"].best and cells["Hard lock (KV-Edit)"]["MSE×10⁴"].text == "1.00"
    assert cells["kvlock"]["LPIPS×10³"].text == "n/c" and "LPIPS×10³: failed: boom" in table.notes
    latex = render(table, "latex")
    assert r"\textbf{31.00}" in latex and r"\cmidrule" in latex and r"kvlock" in latex
    assert rf"n/c$^{{{cells['kvlock']['LPIPS×10³'].note}}}$" in latex


def test_same_job_in_two_dirs_counts_once_and_variants_get_labels(tiny_sweep, tmp_path):
    shutil.copytree(tiny_sweep.dir, tmp_path / "a")
    shutil.copytree(tiny_sweep.dir / "1_hard_lock", tmp_path / "b" / "1_hard_lock")
    report = Report.load(tmp_path)
    assert len(report.collection.files) == 3 and len(report.collection.rows) == 4
    variant = tmp_path / "b" / "1_hard_lock" / "results.parquet"
    rows = pd.read_parquet(variant)
    original = rows.config_hash[0]
    rows["config_hash"] = "f" * 16
    rows["overrides"] = rows.overrides.str.replace('"method=hard_lock"', '"method=hard_lock", "method.fg_only=true"')
    rows.to_parquet(variant)
    agg = Report.load(tmp_path).aggregated.set_index("label")
    assert sorted(agg.index) == [f"hard_lock [{original[:8]}]", "hard_lock [fg_only=true]", "kvlock"]
    assert (agg.n_total == 2).all()
    assert "| Hard lock (KV-Edit) [fg_only=true] " in Report.load(tmp_path).text("kvedit")


def test_pareto_front():
    points = [(30, 20), (25, 25), (20, 20), (31, 10)]
    assert pareto_front(points, (True, True)) == [0, 1, 3]
    assert pareto_front(points, (False, True)) == [1, 2]


def test_cli_latex_file_plot_and_errors(tiny_sweep, tmp_path):
    out, plot = tmp_path / "t.tex", tmp_path / "p.png"
    result = run_module("benchmarks.report", str(tiny_sweep.dir), "--table", "kvedit", "--format", "latex",
                        "--out", str(out), "--plot", str(plot), "--plot-axes", "bg_psnr,fg_psnr_gt", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    tex = out.read_text()
    assert r"\toprule" in tex and r"\textbf{" in tex and "HPS" in tex and r"n/c$^{1}$" in tex
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report_main([str(tiny_sweep.dir), "--plot", str(tmp_path / "x.png")]) == 1  # no clip_text here
    assert not (tmp_path / "x.png").exists()
    assert report_main([str(tmp_path / "nothing")]) == 2


def test_toy_compare_pairs_the_same_edits_and_brackets_the_mean_difference(tiny_sweep, capsys):
    from benchmarks.toy_compare import compare, main, paired_rows

    table = paired_rows(str(tiny_sweep.dir), "kvlock", "hard_lock", ["bg_psnr", "bg_mse"])
    assert len(table) == 2 and set(table.edit_type) == {"color_change", "removal"}
    by_method = {}
    for path in tiny_sweep.dir.glob("*/results.parquet"):
        rows = pd.read_parquet(path).set_index("edit_id")
        by_method[rows.method.iloc[0]] = rows
    result = compare(table, "kvlock", "hard_lock", ["bg_psnr", "bg_mse"]).set_index(["metric", "edit_type"])
    expected = (by_method["kvlock"].bg_psnr - by_method["hard_lock"].bg_psnr).mean()
    overall = result.loc[("bg_psnr", "all")]
    assert overall.n == 2 and overall.difference == pytest.approx(expected, rel=1e-12)
    assert overall.ci_low <= overall.difference <= overall.ci_high
    assert result.loc[("bg_psnr", "removal")].n == 1  # one edit: no interval
    assert pd.isna(result.loc[("bg_psnr", "removal")].ci_low)
    main([str(tiny_sweep.dir), "--metrics", "bg_psnr"])
    assert "| bg_psnr | all | 2 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no finished edits of \\['apg'\\]"):
        paired_rows(str(tiny_sweep.dir), "kvlock", "apg", ["bg_psnr"])
