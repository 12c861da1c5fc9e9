"""Every command in the README runs as written (here) or is covered by a named test."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

# Commands run here exactly as the README writes them (outputs go to a temp KVLOCK_ROOT).
RUN_AS_WRITTEN = {
    "python -m benchmarks.run method=hard_lock",
    "python -m benchmarks.run debug=default",
    "python -m benchmarks.run method=kvlock --cfg job",
}
# Commands whose placeholders, cluster or run time keep them out of this test: the test that covers each.
COVERED_BY = {
    "make demo": "tests/test_readme.py::test_demo_experiment_runs_and_prints_the_report",
    "make test": "tests/test_readme.py::test_every_readme_command_is_run_or_covered",  # CI runs it
    "python -m benchmarks.run -m method=kvlock,hard_lock,full_injection,fixed_cfg seed=0,1":
        "tests/test_sweeps.py::test_joblib_sweep_writes_results_wandb_and_report",
    "python -m benchmarks.run dataset=manifest dataset.path=/path/to/edits.jsonl":
        "tests/test_reliability.py::test_bad_input_corpus_fails_each_bad_edit_clearly_and_completes_the_good_ones",
    "python -m benchmarks.run dataset=davis dataset.root=/path/to/DAVIS dataset.sequences=[blackswan]":
        "tests/test_data_davis.py::test_prompts_from_config_and_prepare",
    "python -m benchmarks.run -m hydra/launcher=joblib method=kvlock,hard_lock":
        "tests/test_sweeps.py::test_joblib_sweep_writes_results_wandb_and_report",
    "python -m benchmarks.run -m hydra/launcher=submitit_local method=kvlock,hard_lock":
        "tests/test_sweeps.py::test_submitit_local_sweep_reuses_the_source_cache",
    "python -m benchmarks.run -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu "
    "model=wan2.1_t2v_1.3b method=kvlock,hard_lock,full_injection,fixed_cfg":
        "tests/test_experiment.py::test_root_defaults_and_presets_compose",
    "python -m benchmarks.run -m experiment=paper_table model=wan2.1_t2v_1.3b hydra.sweep.dir=multirun/paper":
        "tests/test_vace.py::test_paper_table_gains_the_vace_row_from_a_second_multirun_into_its_sweep_dir",
    "python -m benchmarks.run -m experiment=paper_table method=vace model=wan2.1_vace_1.3b "
    "hydra.sweep.dir=multirun/paper":
        "tests/test_vace.py::test_paper_table_gains_the_vace_row_from_a_second_multirun_into_its_sweep_dir",
    "python -m benchmarks.run -m experiment=kvlock_ablation":
        "tests/test_experiment.py::test_every_experiment_composes_into_valid_jobs",
    "python -m benchmarks.run -m experiment=kvedit_table":
        "tests/test_experiment.py::test_every_experiment_composes_into_valid_jobs",
    "python -m kvlock.data.fetch five_bench --root data/FiVE":
        "tests/test_data_fetch.py::test_five_bench_fetch_downloads_checks_unpacks_and_resumes",
    "python -m kvlock.data.fetch pie_bench --root data/PIE --archive PIE-Bench_v1.zip":
        "tests/test_data_fetch.py::test_pie_bench_fetch_from_the_forms_link",
    "python -m benchmarks.run -m experiment=five_bench dataset.root=data/FiVE":
        "tests/test_data_benchmarks.py::test_unseen_clips_run_end_to_end_in_both_layouts",
    "python -m benchmarks.run -m experiment=kvedit_table dataset=pie_bench dataset.root=data/PIE":
        "tests/test_data_benchmarks.py::test_unseen_clips_run_end_to_end_in_both_layouts",
    "python -m benchmarks.report multirun/paper --table kvlock_main --format latex":
        "tests/test_report.py::test_cli_latex_file_plot_and_errors",
    "python -m benchmarks.evaluate --source src.mp4 --edited edit.mp4 --mask masks/ "
    '--source-prompt "a black swan" --target-prompt "a white duck" --json':
        "tests/test_evaluate.py::test_subprocess_prints_json_with_the_metric_columns",
    "python -m kvlock.weights status": "tests/test_weights_download.py::test_status_names_every_metric_model",
    "python -m kvlock.weights fetch vbench_iq":
        "tests/test_weights_download.py::test_cli_fetch_by_metric_refuses_a_corrupt_mirror_file",
}


def readme_commands() -> list[str]:
    """Commands of the README's bash blocks: continuation lines joined, comments stripped."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(" ".join(line.split()))
    return commands


def run_readme(command: str, root) -> subprocess.CompletedProcess:
    env = {**os.environ, "KVLOCK_ROOT": str(root), "WANDB_MODE": "offline",
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def test_every_readme_command_is_run_or_covered():
    commands = readme_commands()
    assert len(commands) >= 10
    unaccounted = [c for c in commands if c not in RUN_AS_WRITTEN and c not in COVERED_BY]
    assert not unaccounted, f"README commands with no test: {unaccounted}"
    for node in COVERED_BY.values():
        path, name = node.split("::")
        assert f"def {name}(" in (REPO / path).read_text(), node


@pytest.mark.parametrize("command", sorted(RUN_AS_WRITTEN))
def test_readme_command_runs_as_written(command, tmp_path):
    assert command in readme_commands()
    result = run_readme(command, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    if "--cfg job" in command:
        assert "name: kvlock" in result.stdout and "source: noised" in result.stdout
        return
    results = list(tmp_path.glob("outputs/**/results.parquet"))
    assert len(results) == 1
    rows = pd.read_parquet(results[0])
    assert (rows.status == "ok").all() and len(rows) >= 1


def test_demo_experiment_runs_and_prints_the_report(tmp_path):
    """`make demo` = `python -m benchmarks.run -m experiment=demo` after the venv bootstrap."""
    makefile = (REPO / "Makefile").read_text()
    assert "$(PY) -m benchmarks.run -m experiment=demo" in makefile
    result = run_readme("python -m benchmarks.run -m experiment=demo", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    sweeps = list(tmp_path.glob("multirun/**/report.md"))
    assert len(sweeps) == 1
    methods = ("kvlock", "hard_lock", "full_injection", "fixed_cfg", "cfg_zero_star", "reconstruct")
    for method in methods:
        assert len(list(sweeps[0].parent.glob(f"*_{method}/results.parquet"))) == 1, method
    report = sweeps[0].read_text()
    for label in ("KV-Lock", "Hard lock (KV-Edit)", "Full injection", "CFG-Zero*", "BG PSNR",
                  "Oracle colour acc. (shape not scored)"):
        assert label in report and label in result.stdout, label
    for picture in ("pareto.png", "grid.png"):
        path = sweeps[0].parent / picture
        assert path.stat().st_size > 0 and str(path) in result.stdout, picture
