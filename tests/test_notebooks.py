"""The analysis notebooks (notebooks/*.py, jupytext percent scripts) executed headless with
nbclient against one real tiny sweep, plus the kvlock.report modules they use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO, run_module

pytestmark = pytest.mark.slow

NOTEBOOKS = REPO / "notebooks"
NAMES = ["01_results_overview", "02_schedules", "03_ablation", "04_gallery"]
METHODS = ["kvlock", "hard_lock", "kvlock_abl_fixed_alpha"]
EDIT = "synthetic-s0-0000__color_change"
# One synthetic edit, 9 frames of 32x32, 4 steps, weight-free metrics, one torch thread.
TINY = ("dataset.num_videos=1", "dataset.edit_types=[color_change]", "dataset.num_frames=9",
        "dataset.height=32", "dataset.width=32", "sampler.steps=4", "metrics=fast", "logger=none",
        "run.num_threads=1", "report.enabled=false")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """3 methods × 2 seeds on one synthetic edit: a real `python -m benchmarks.run -m` multirun."""
    root = tmp_path_factory.mktemp("nb_sweep")
    result = run_module("benchmarks.run", "-m", f"method={','.join(METHODS)}", "seed=0,1", *TINY,
                        f"paths.output_dir={root}", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(list((root / "sweep").glob("*/results.parquet"))) == 6
    return root / "sweep"


def execute(name: str, results_dir: Path, monkeypatch) -> tuple[str, int]:
    """Run notebooks/<name>.py (converted with jupytext) in a python3 kernel with
    KVLOCK_RESULTS_DIR set; fail on any cell error. Returns (all text output, number of PNGs)."""
    import jupytext
    import nbclient

    monkeypatch.setenv("KVLOCK_RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("KVLOCK_FIG_DIR", raising=False)
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    texts, images = [], 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{name}: {output.ename}: {output.evalue}"
            if output.output_type == "stream":
                assert output.name == "stdout" or "Traceback" not in output.text, output.text
                texts.append(output.text)
            data = output.get("data", {})
            texts += [data[k] for k in ("text/markdown", "text/plain") if k in data]
            images += "image/png" in data
    return "\n".join(texts), images


# --- notebook files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_is_the_paired_py_without_outputs(name):
    import jupytext
    import nbformat

    ipynb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [(c.cell_type, c.source) for c in script.cells], \
        f"notebooks/{name}.ipynb is out of date: jupytext --sync notebooks/{name}.py"
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has outputs"
    tagged = [c for c in script.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and re.search(r'^RESULTS_DIR = "', tagged[0].source, re.M)
    assert ipynb.metadata.kernelspec.name == "python3"


# --- executed notebooks ----------------------------------------------------------------------


def test_results_overview(sweep, monkeypatch):
    text, images = execute("01_results_overview", sweep, monkeypatch)
    assert "6 rows (6 ok, 0 failed)" in text and "seeds: [0, 1]" in text
    assert "KV-Lock main table" in text and "All metrics" in text
    for method in METHODS:
        assert method in text
    assert "| KV-Lock " in text and "| Hard lock (KV-Edit) " in text
    assert "Edits" in text and "2/2" in text  # seeds pooled: one row per method, 2 runs each
    assert "edit types: color_change" in text
    # no CLIP here: the Pareto plot falls back to the synthetic ground-truth alignment and says so
    assert "x = bg_psnr, y = fg_psnr_gt (clip_text not computed)" in text and images == 1
    assert "needs ≥ 2 seeds" not in text and "verdict" in text
    # 1 edit × 2 seeds = 2 pairs per comparison: below MIN_PAIRS, so no verdict is claimed
    assert re.search(r"kvlock vs the others, (\d+) comparisons: too few pairs \(< 5\): \1$", text, re.M), text[-2000:]


def test_results_overview_single_seed_degrades(sweep, monkeypatch):
    """One job dir: one method, one seed. Significance says why it is skipped; no cell fails."""
    text, images = execute("01_results_overview", sweep / "0_kvlock", monkeypatch)
    assert "seeds: [0]" in text and "methods: kvlock" in text
    assert "significance needs ≥ 2 seeds" in text
    assert images == 1  # a one-point Pareto plot


def test_schedules(sweep, monkeypatch):
    text, images = execute("02_schedules", sweep, monkeypatch)
    assert "6 traces, 0 missing" in text
    assert f"edit {EDIT}, seed 0" in text
    assert "constant α and ω schedules: hard_lock" in text  # KV-Lock's schedule is not constant
    assert "figures shown: True" in text and images == 2
    summary = re.search(r"^kvlock\s+(\S+)\s+(\S+)", text, re.M)
    assert summary and float(summary.group(1)) == 4 and float(summary.group(2)) > 0  # detector fired


def test_ablation(sweep, monkeypatch):
    text, images = execute("03_ablation", sweep, monkeypatch)
    assert "KV-Lock ablation" in text and "| Full (KV-Lock) " in text and "| Fixed α 0.5 " in text
    assert "ablation rows not in these runs (6 of 8)" in text and "Global σ² (kvlock_abl_global_sigma)" in text
    assert "left out of the ablation table (not ablation rows): hard_lock" in text
    assert "Hard lock" not in text.split("KV-Lock ablation", 1)[1]
    for knob, key in [("τ", "method.detector.tau"), ("W", "method.detector.window"),
                      ("κ", "method.detector.active_last"), ("b", "method.guidance.omega_max_ratio")]:
        assert f"{knob} ({key}) not swept in these runs" in text
    assert "no knob was swept" in text and images == 0


def test_gallery(sweep, monkeypatch):
    text, images = execute("04_gallery", sweep, monkeypatch)
    assert f"{EDIT} (color_change), seed 0: source | mask | {' | '.join(METHODS)}" in text
    assert "frames [0, 4, 8] of 9" in text
    assert "gallery figures: 1" in text and images == 1


# --- helpers on the same sweep -----------------------------------------------------------------


def test_helpers_knobs_significance_and_clips(sweep):
    import numpy as np

    from kvlock.report.collect import aggregate, collect
    from kvlock.report.gallery import gallery_clips
    from kvlock.report.knobs import knob_frame, swept
    from kvlock.report.selection import ok_rows, pool_seeds, seeds, subset
    from kvlock.report.stats import paired_significance

    collection = collect(sweep)
    assert seeds(collection) == [0, 1]
    assert len(aggregate(collection)) == 6 and len(aggregate(pool_seeds(collection))) == 3
    sig = paired_significance(collection, "bg_psnr", min_pairs=2)
    assert set(sig.other) == {"hard_lock", "kvlock_abl_fixed_alpha"} and (sig.n_pairs == 2).all()
    assert sig.set_index("other").verdict["hard_lock"] == "worse"  # hard lock keeps the background exactly
    with pytest.raises(ValueError, match="≥ 2 seeds"):
        paired_significance(subset(collection, collection.rows.seed == 0), "bg_psnr")

    rows = ok_rows(collection)
    tau = rows.apply(lambda r: json.loads(r.config)["method"]["detector"]["tau"], axis=1)
    assert set(tau) == {0.01}
    configs = [json.loads(c) for c in rows.config]
    for config, seed in zip(configs, rows.seed):
        config["method"]["detector"]["tau"] = 0.003 if seed else 0.03
    knobs = knob_frame(rows.assign(config=[json.dumps(c) for c in configs]))
    assert swept(knobs, "τ") and not swept(knobs, "W")

    clips, notes = gallery_clips(subset(collection, collection.rows.seed == 1), EDIT)
    assert list(clips) == ["source", "mask", *METHODS] and not notes
    assert all(c.shape == (9, 32, 32, 3) for c in clips.values())
    assert clips["mask"].mean() > 10  # the white edit region survives the lossy mp4
    hard = clips["hard_lock"].astype(int)
    background = clips["mask"].mean(-1) < 64
    assert np.abs(hard - clips["source"].astype(int))[background].mean() < 8  # hard lock keeps the bg


def test_edit_grid_rows_are_methods_and_columns_frames(sweep, tmp_path):
    from PIL import Image

    from kvlock.report.collect import collect
    from kvlock.report.gallery import common_edit, edit_grid

    collection = collect(sweep)
    assert common_edit(collection) == EDIT
    path = edit_grid(collection, tmp_path / "grid.png")
    width, height = Image.open(path).size
    assert width > height  # 9 frame columns; the source row and 6 configs (3 methods x 2 seeds)
    with pytest.raises(ValueError, match="no ok result rows"):
        edit_grid(collection, tmp_path / "missing.png", edit_id="no-such-edit")


def test_notebooks_dir_lists_every_notebook():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == NAMES
    readme = (NOTEBOOKS / "README.md").read_text()
    assert "KVLOCK_RESULTS_DIR" in readme and all(name in readme for name in NAMES)
