"""Reliability: a bad-input corpus through a real run, determinism across runs, safe loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, TINY_RUN, run_module
from PIL import Image

from kvlock.data.synthetic import render_scene, sample_scene
from kvlock.data.video_io import write_mp4

pytestmark = pytest.mark.slow

PROMPTS = {"source_prompt": "a red square", "target_prompt": "a blue circle", "edit_type": "color_change"}


def write_clip(folder: Path, frames: np.ndarray, masks: np.ndarray) -> tuple[str, str]:
    """frames/ (PNG) and masks/ (0/255 PNG) under `folder`; paths relative to its parent."""
    (folder / "frames").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / "frames" / f"{i:05d}.png")
    for i, mask in enumerate(masks):
        Image.fromarray(mask).save(folder / "masks" / f"{i:05d}.png")
    return f"{folder.name}/frames", f"{folder.name}/masks"


def build_corpus(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A manifest with one good edit, bad inputs (each must fail with a clear error), and inputs
    the harness handles.

    Returns (manifest, {bad edit id: expected words in its error}, {handled edit id: what happened}).
    """
    frames, mask = render_scene(sample_scene(np.random.default_rng(0), num_objects=1), 9, 32, 32)
    masks = mask.astype(np.uint8) * 255
    lines, bad, handled = [], {}, {}

    def add(edit_id, folder_frames, folder_masks, expect=None, note=None, **fields):
        video, mask_dir = write_clip(root / edit_id, folder_frames, folder_masks)
        lines.append(json.dumps({"id": edit_id, "video": video, "mask": mask_dir, **PROMPTS, **fields}))
        if expect:
            bad[edit_id] = expect
        if note:
            handled[edit_id] = note

    add("good", frames, masks)
    add("count_mismatch", frames, masks[:8], expect="8 masks for 9 frames|mismatch|count")
    add("size_mismatch", frames, masks[:, :16, :16], expect="size")
    add("empty_mask", frames, np.zeros_like(masks), expect="empty")
    add("full_mask", frames, np.full_like(masks, 255), expect="full")
    add("too_short", frames[:3], masks[:3], expect="too short|frame")
    add("empty_prompt", frames, masks, expect="prompt", source_prompt="")
    add("nonbinary_mask", frames, (mask * 200 + 30).astype(np.uint8), note="thresholded, reported in meta")
    add("odd_resolution", frames[:, :30, :30], masks[:, :30, :30], note="resized/cropped")

    add("corrupt_jpeg", frames, masks, expect="corrupt_jpeg|cannot|image")
    (root / "corrupt_jpeg" / "frames" / "00003.png").unlink()
    (root / "corrupt_jpeg" / "frames" / "00003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for png in (root / "corrupt_jpeg" / "frames").glob("*.png"):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"))
        png.unlink()

    (root / "truncated").mkdir()
    mp4 = write_mp4(root / "truncated" / "video.mp4", frames, fps=8)
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    write_clip(root / "truncated" / "m", frames, masks)
    lines.append(json.dumps({"id": "truncated_mp4", "video": "truncated/video.mp4", "mask": "truncated/m/masks",
                             **PROMPTS}))
    bad["truncated_mp4"] = "video.mp4"
    lines.append(json.dumps({"id": "missing_files", "video": "nowhere/frames", "mask": "nowhere/masks", **PROMPTS}))
    bad["missing_files"] = "nowhere"
    lines.append(json.dumps({"id": "escape", "video": "../outside/frames", "mask": "good/masks", **PROMPTS}))
    bad["escape"] = "outside|escape"
    lines.append('{"id": "malformed", "video": ')
    manifest = root / "edits.jsonl"
    body = "\n".join(lines).encode() + b"\n" + '{"id": "caf\xe9"}'.encode("latin-1") + b"\n"
    manifest.write_bytes(body)
    bad[f"edits.jsonl:{len(lines)}"] = "JSON"
    bad[f"edits.jsonl:{len(lines) + 1}"] = "UTF-8"
    return manifest, bad, handled


def test_bad_input_corpus_fails_each_bad_edit_clearly_and_completes_the_good_ones(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    manifest, bad, handled = build_corpus(corpus)
    run_dir = tmp_path / "run"
    result = run_module("benchmarks.run", "dataset=manifest", f"dataset.path={manifest}", "method=hard_lock",
                        "dataset.prepare.height=32", "dataset.prepare.width=32", "logger=none",
                        "run.save_comparison=false", f"paths.cache_dir={tmp_path / 'cache'}",
                        f"hydra.run.dir={run_dir}", "metrics=fast", "sampler.steps=2", "run.num_threads=1",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    rows = pd.read_parquet(run_dir / "results.parquet").set_index("edit_id")

    assert rows.loc["good", "status"] == "ok"
    for edit_id, note in handled.items():
        assert rows.loc[edit_id, "status"] == "ok", (edit_id, note, rows.loc[edit_id, "error"])
    rejected = 0
    for edit_id, expected in bad.items():
        assert edit_id in rows.index, (edit_id, sorted(rows.index))
        row = rows.loc[edit_id]
        assert row["status"] == "failed", edit_id
        error = row["error"]
        assert "\n" not in error and re.search(expected, error, re.IGNORECASE), (edit_id, error)
        assert re.search(r"/|\.jsonl|\.mp4|\.png|\.jpg", error), f"{edit_id}: no file named in {error!r}"
        log_line = [line for line in result.stdout.splitlines() if f"edit {edit_id} failed" in line]
        assert log_line, f"no one-line log for {edit_id}"
        rejected += 1
    assert len(rows) == 1 + len(handled) + len(bad) and not rows.index.duplicated().any()
    for edit_id in bad:
        print(f"  {edit_id}: {rows.loc[edit_id, 'error']}")
    print(f"bad-input corpus: {rejected} rejected with a clear error, {len(handled)} handled, 1 good edit ok")


def test_same_config_and_seed_reproduce_bit_identical_outputs_and_different_seeds_differ(tmp_path):
    common = ["method=kvlock", "logger=none", *TINY_RUN, "dataset.edit_types=[color_change]",
              f"paths.cache_dir={tmp_path / 'cache'}"]
    sweep = run_module("benchmarks.run", "-m", *common, "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                       cwd=tmp_path)
    single = run_module("benchmarks.run", *common, "seed=0", f"hydra.run.dir={tmp_path / 'again'}", cwd=tmp_path)
    assert sweep.returncode == 0 and single.returncode == 0, (sweep.stdout[-2000:], single.stdout[-2000:])
    first = pd.read_parquet(next((tmp_path / "sweep").glob("0_*/results.parquet")))
    other_seed = pd.read_parquet(next((tmp_path / "sweep").glob("1_*/results.parquet")))
    again = pd.read_parquet(tmp_path / "again" / "results.parquet")
    metrics = ["bg_psnr", "bg_mse", "bg_ssim", "flicker", "warp_error", "fg_psnr_gt", "nfe"]
    pd.testing.assert_frame_equal(first[metrics], again[metrics])
    assert first["config_hash"].iloc[0] == again["config_hash"].iloc[0]
    trace = "traces/synthetic-s0-0000__color_change.json"
    assert (first_dir := next((tmp_path / "sweep").glob("0_*"))).joinpath(trace).read_text() == \
        (tmp_path / "again" / trace).read_text()
    assert not first[metrics].equals(other_seed[metrics])
    for frame in (first, other_seed, again):
        for column in ("seed", "config_hash", "git_sha", "versions"):
            assert frame[column].notna().all(), column
        assert {"torch", "diffusers"} <= set(json.loads(frame["versions"].iloc[0]))
    assert first_dir.name.startswith("0_")


def test_weights_and_caches_load_safely_and_nothing_goes_through_a_shell():
    sources = [p for d in ("kvlock", "benchmarks", "baselines") for p in (REPO / d).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
        assert "shell=True" not in text and "os.system(" not in text and "pickle.load" not in text, path
