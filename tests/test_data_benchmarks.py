"""FiVE-Bench and PIE-Bench loaders on miniature trees in the published layouts (real DAVIS
frames from ../shared/data), every kind of bad input, and one end-to-end hard_lock run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_layouts import (
    clip,
    encode_rle,
    five_entry,
    pie_entry,
    square,
    write_five_clip,
    write_five_prompts,
    write_pie_image,
    write_pie_mapping,
    write_vace_entry,
)
from conftest import SHARED_DATA, run_module
from omegaconf import OmegaConf
from PIL import Image

from kvlock.backbones.geometry import FrameRules
from kvlock.data import DataError, EditSample, FailedItem, iter_dataset
from kvlock.data.pie_bench import decode_rle
from kvlock.report.build import Report
from kvlock.report.render import render

RULES = FrameRules(temporal_factor=4, size_multiple=16)
CLIPS = SHARED_DATA / "videos"
EVAL_CLIPS = SHARED_DATA.parent / "eval" / "videos"


def dataset_cfg(name: str, root: Path, **options):
    cfg = OmegaConf.load(f"conf/dataset/{name}.yaml")
    return OmegaConf.merge(cfg, {"root": str(root), **options})


# -- FiVE-Bench -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_root(tmp_path_factory):
    """Two clips (blackswan, tennis) and three prompt files in FiVE's layout."""
    root = tmp_path_factory.mktemp("five")
    for name in ("blackswan", "tennis"):
        write_five_clip(root, name, *clip(CLIPS / name, 9))
    write_five_prompts(root, 1, [
        five_entry("blackswan", 1, "a black [swan] on a pond", "a black [duck] on a pond"),
        five_entry("tennis", 1, "a man playing [tennis]", "a man playing [badminton]",
                   multiple_choice_question="What is played? a) tennis b) badminton"),
    ])
    write_five_prompts(root, 3, [five_entry("tennis", "3", "a [white] shirt", "a [red] shirt")])
    write_five_prompts(root, 6, [five_entry("blackswan", 6, "a [swan] on a pond", "a pond")])
    return root


def test_five_bench_layout_loads_with_fives_labels(five_root):
    items = list(iter_dataset(dataset_cfg("five_bench", five_root)))

    assert all(isinstance(i, EditSample) for i in items), items
    assert [i.edit_id for i in items] == [
        "edit1_000_blackswan", "edit1_001_tennis", "edit3_000_tennis", "edit6_000_blackswan"]
    assert [i.edit_type for i in items] == [
        "Object Replacement (Rigid)", "Object Replacement (Rigid)", "Color Alteration",
        "Object Removal"]
    assert [i.meta["canonical_edit_type"] for i in items] == [
        "object_replace", "object_replace", "color_change", "removal"]
    first = items[0]
    assert first.source_prompt == "a black swan on a pond" and first.target_prompt == "a black duck on a pond"
    assert first.meta["edited_words"] == {"source": ["swan"], "target": ["duck"]}
    assert items[1].meta["vlm_questions"] == {
        "multiple_choice_question": "What is played? a) tennis b) badminton"}
    assert first.frames.shape == (9, 60, 107, 3) and first.mask.shape == (9, 60, 107)
    assert items[0].frames is items[3].frames  # a video shared by two prompt files is read once


def test_five_bench_binarises_jpeg_masks_as_five_does(five_root):
    """FiVE: a JPEG mask pixel > 0 is edit region, so compression ringing widens the mask."""
    [sample] = iter_dataset(dataset_cfg("five_bench", five_root, edit_files=[3]))
    _, truth = clip(CLIPS / "tennis", 9)
    raw = np.stack([np.asarray(Image.open(f)) for f in
                    sorted((five_root / "bmasks" / "tennis").iterdir())])

    assert sample.meta["mask"]["rule"] == "value > 0" and sample.meta["mask"]["non_binary"]
    assert (sample.mask == (raw > 0)).all()
    assert (sample.mask >= truth).all() and sample.mask.sum() > truth.sum()


def test_five_bench_selects_files_and_types(five_root):
    by_file = list(iter_dataset(dataset_cfg("five_bench", five_root, edit_files=["edit6_FiVE.json", 3])))
    by_type = list(iter_dataset(dataset_cfg("five_bench", five_root, edit_types=["Color Alteration", 6])))

    assert [i.edit_id for i in by_file] == ["edit6_000_blackswan", "edit3_000_tennis"]
    assert [i.edit_id for i in by_type] == ["edit3_000_tennis", "edit6_000_blackswan"]
    with pytest.raises(ValueError, match="Unknown FiVE edit type 'Teleport'"):
        iter_dataset(dataset_cfg("five_bench", five_root, edit_types=["Teleport"]))


def make_five_bad(case: str, root: Path) -> tuple[str, str]:
    """Break the tree for `case`; returns (file named in the error, problem text)."""
    if case == "missing_frame_folder":
        write_five_prompts(root, 2, [five_entry("ghost", 2, "a", "b")])
        return "images/ghost", "frame folder not found"
    if case == "missing_mask_frame":
        (root / "bmasks" / "bad" / "00003.jpg").unlink()
        return "bmasks/bad/00003.jpg", "mask not found for this frame"
    if case == "mask_other_size":
        for file in (root / "bmasks" / "bad").iterdir():
            Image.open(file).resize((40, 30)).save(file)
        return "bmasks/bad", "mask size 30x40 differs from frame size 30x54"
    if case == "unknown_editing_type_id":
        write_five_prompts(root, 2, [five_entry("bad", 7, "a", "b")])
        return "edit2_FiVE.json", "entry 0: unknown editing_type_id 7 (FiVE has 1, 2, 3, 4, 5, 6)"
    if case == "broken_prompt_file":
        text = json.dumps([five_entry("bad", 2, "a", "b")], indent=2)
        (root / "edit_prompt" / "edit2_FiVE.json").write_text(text.replace('"b"', '"b'))
        return "edit2_FiVE.json", "line 6: malformed JSON"
    if case == "missing_prompt":
        entry = five_entry("bad", 2, "a", "b")
        del entry["target_prompt"]
        write_five_prompts(root, 2, [entry])
        return "edit2_FiVE.json", "entry 0: missing key(s) target_prompt"
    raise AssertionError(case)


FIVE_BAD = ["missing_frame_folder", "missing_mask_frame", "mask_other_size",
            "unknown_editing_type_id", "broken_prompt_file", "missing_prompt"]


@pytest.mark.parametrize("case", FIVE_BAD)
def test_five_bench_bad_input_fails_alone(case, tmp_path):
    video, mask = clip(CLIPS / "blackswan", 5, scale=8)
    write_five_clip(tmp_path, "good", video, mask)
    write_five_clip(tmp_path, "bad", video, mask)
    write_five_prompts(tmp_path, 1, [five_entry("good", 1, "a [swan]", "a [duck]")])
    write_five_prompts(tmp_path, 2, [five_entry("bad", 2, "a [swan]", "a [dog]")])
    write_five_prompts(tmp_path, 3, [five_entry("good", 3, "a [black] swan", "a [red] swan")])
    named_file, problem = make_five_bad(case, tmp_path)

    items = list(iter_dataset(dataset_cfg("five_bench", tmp_path, prepare={"max_frames": 5}), RULES))

    assert [type(i).__name__ for i in items] == ["EditSample", "FailedItem", "EditSample"], items
    path, _, error = items[1].error.partition(": ")
    assert path.endswith(named_file) and problem in error, items[1].error
    assert "\n" not in items[1].error


# -- PIE-Bench --------------------------------------------------------------------------------


def mask_decode_reference(runs, shape=(512, 512)):
    """PnPInversion evaluation/evaluate.py mask_decode, restated: runs set 1, then the border."""
    length = shape[0] * shape[1]
    flat = np.zeros(length)
    for i in range(0, len(runs), 2):
        for j in range(min(runs[i + 1], length - runs[i])):
            flat[runs[i] + j] = 1
    out = flat.reshape(shape)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = 1
    return out


def test_rle_decodes_as_pnpinversion_evaluation():
    _, masks = clip(CLIPS / "bmx-trees", 1)
    truth = square(masks[0], 64)
    runs = encode_rle(truth)

    ours = decode_rle(runs, (64, 64), border=True)
    plain = decode_rle(runs, (64, 64), border=False)

    assert (ours == mask_decode_reference(runs, (64, 64)).astype(bool)).all()
    assert (plain == truth).all() and ours.sum() > plain.sum()
    with pytest.raises(ValueError, match=r"run 1 \(start 4090, length 10\) overruns the 64x64 image"):
        decode_rle([0, 3, 4090, 10], (64, 64))
    with pytest.raises(ValueError, match="even length"):
        decode_rle([0, 3, 5], (64, 64))


@pytest.fixture(scope="module")
def pie_root(tmp_path_factory):
    """Three 512x512 images (first frames of blackswan, tennis, bmx-trees) in PIE's layout."""
    root = tmp_path_factory.mktemp("pie")
    mapping = {}
    for index, (name, type_id, folder) in enumerate(
        [("blackswan", "1", "1_change_object_80/1_artificial/1_animal"),
         ("tennis", "3", "3_delete_object_80/2_natural/2_human"),
         ("bmx-trees", "0", "0_random_140")]):
        video, masks = clip(CLIPS / name, 1, scale=1)
        key = f"{type_id}{index:011d}"
        write_pie_image(root, f"{folder}/{key}.jpg", square(video[0]))
        mapping[key] = pie_entry(f"{folder}/{key}.jpg", type_id, square(masks[0]))
    write_pie_mapping(root, mapping)
    return root


def test_pie_bench_layout_loads_one_frame_clips(pie_root):
    raw = list(iter_dataset(dataset_cfg("pie_bench", pie_root)))
    prepared = list(iter_dataset(dataset_cfg("pie_bench", pie_root, prepare={"height": 64, "width": 64}), RULES))

    assert all(isinstance(i, EditSample) for i in raw + prepared), raw + prepared
    assert [i.edit_type for i in raw] == ["1_change_object", "3_delete_object", "0_random"]
    assert [i.meta["canonical_edit_type"] for i in raw] == ["object_replace", "removal", None]
    first = raw[0]
    assert first.frames.shape == (1, 512, 512, 3) and first.mask.shape == (1, 512, 512)
    assert first.mask[0, 0].all() and first.mask[0, :, -1].all()  # mask_border on by default
    assert first.source_prompt == "a photo of a scene" and first.target_prompt == "a photo of a golden scene"
    assert first.meta["blended_word"] == "scene scene" and first.meta["edited_words"] == ["golden"]
    assert prepared[0].frames.shape == (1, 64, 64, 3) and prepared[0].meta["prepare"]["frames_kept"] == 1
    no_border = next(iter_dataset(dataset_cfg("pie_bench", pie_root, mask_border=False)))
    assert not no_border.mask[0, 0].all() and no_border.mask.sum() < first.mask.sum()


def make_pie_bad(case: str, root: Path, entry: dict) -> tuple[str, str]:
    if case == "rle_overrun":
        entry["mask"] = entry["mask"] + [512 * 512 - 5, 10]
        return "mapping_file.json", "overruns the 512x512 image"
    if case == "unknown_editing_type_id":
        entry["editing_type_id"] = "12"
        return "mapping_file.json", "entry 'bad': unknown editing_type_id '12' (PIE-Bench has 0-9)"
    if case == "image_other_size":
        write_pie_image(root, entry["image_path"], np.zeros((256, 384, 3), np.uint8))
        return "mapping_file.json", "mask size 512x512 differs from frame size 256x384"
    if case == "missing_image":
        entry["image_path"] = "9_change_style_80/none.jpg"
        return "none.jpg", "image not found"
    if case == "missing_prompt":
        del entry["editing_prompt"]
        return "mapping_file.json", "entry 'bad': missing key(s) editing_prompt"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["rle_overrun", "unknown_editing_type_id", "image_other_size", "missing_image", "missing_prompt"])
def test_pie_bench_bad_input_fails_alone(case, tmp_path):
    video, masks = clip(CLIPS / "blackswan", 1, scale=1)
    image, mask = square(video[0]), square(masks[0])
    mapping = {}
    for key in ("good1", "bad", "good2"):
        write_pie_image(tmp_path, f"1_change_object_80/{key}.jpg", image)
        mapping[key] = pie_entry(f"1_change_object_80/{key}.jpg", "1", mask)
    named_file, problem = make_pie_bad(case, tmp_path, mapping["bad"])
    write_pie_mapping(tmp_path, mapping)

    items = list(iter_dataset(dataset_cfg("pie_bench", tmp_path)))

    assert [type(i).__name__ for i in items] == ["EditSample", "FailedItem", "EditSample"], items
    path, _, error = items[1].error.partition(": ")
    assert path.endswith(named_file) and problem in error, items[1].error


def test_pie_bench_broken_mapping_file_is_one_clear_error(tmp_path):
    (tmp_path / "mapping_file.json").write_text('{\n  "a": {"image_path": "x.jpg",\n  "mask": [1, 2\n}\n')

    with pytest.raises(DataError, match=r"mapping_file.json: line 4: malformed JSON"):
        list(iter_dataset(dataset_cfg("pie_bench", tmp_path)))
    with pytest.raises(DataError, match="mapping file not found"):
        list(iter_dataset(dataset_cfg("pie_bench", tmp_path / "nowhere")))


@pytest.mark.slow
def test_a_broken_mapping_file_stops_the_run_with_one_line(tmp_path):
    (tmp_path / "mapping_file.json").write_text('{\n  "a": {"mask": [1, 2\n}\n')

    result = run_module("benchmarks.run", "dataset=pie_bench", f"dataset.root={tmp_path}",
                        "method=hard_lock", "metrics=fast", f"hydra.run.dir={tmp_path / 'run'}",
                        cwd=tmp_path, timeout=300)

    assert result.returncode == 1 and "Traceback" not in result.stdout
    assert result.stdout.strip().endswith(
        f"error: {tmp_path / 'mapping_file.json'}: line 3: malformed JSON (Expecting ',' delimiter at column 1)")


# -- VACE-Benchmark ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vace_root(tmp_path_factory):
    """Two task examples (inpainting, swap_anything), a control example without a mask (depth)
    and one evaluation sample, from DAVIS clips, in VACE-Benchmark's layout."""
    root = tmp_path_factory.mktemp("vace")
    video, mask = clip(CLIPS / "blackswan", 5, scale=4)
    video, mask = video[:, :60, :106], mask[:, :60, :106]  # even sizes: the mp4s keep them
    examples = root / "assets" / "examples"
    write_vace_entry(examples / "inpainting", "", video, mask, "ori_video")
    write_vace_entry(examples / "swap_anything", "", video, mask, "ori_video")
    (examples / "depth").mkdir()
    (examples / "depth" / "src_video.mp4").write_bytes((examples / "inpainting" / "src_video.mp4").read_bytes())
    write_vace_entry(root / "data", "sample000000_", video, mask, "raw_video")
    return root, video, mask


def test_vace_benchmark_reads_masked_entries_with_their_prompts(vace_root):
    root, video, mask = vace_root
    prompts = {"inpainting": "a golden phoenix on a pond", "sample000000": "a white duck"}

    items = list(iter_dataset(dataset_cfg("vace_benchmark", root, prompts=prompts)))

    assert [(type(i).__name__, i.edit_id) for i in items] == [
        ("EditSample", "inpainting"), ("FailedItem", "swap_anything"), ("EditSample", "sample000000")]
    assert "no prompt for entry 'swap_anything' (set dataset.prompts.swap_anything)" in items[1].error
    inpainting, sample = items[0], items[2]
    assert inpainting.edit_type == "inpainting" and sample.edit_type == "masked_v2v"
    assert inpainting.target_prompt == "a golden phoenix on a pond" == inpainting.source_prompt
    assert inpainting.meta["video_path"].endswith("ori_video.mp4")
    assert inpainting.frames.shape == (5, 60, 106, 3)
    assert (inpainting.mask == mask).mean() > 0.98  # through H.264
    assert np.abs(inpainting.frames.astype(int) - video).mean() < 6  # the original, not blanked
    blanked = next(iter_dataset(dataset_cfg("vace_benchmark", root, prompts=prompts, video="src")))
    assert np.abs(blanked.frames[inpainting.mask].astype(int) - 127).mean() < 6
    with pytest.raises(ValueError, match="video must be one of raw, src"):
        iter_dataset(dataset_cfg("vace_benchmark", root, video="ori"))


def test_vace_benchmark_names_a_missing_entry_and_an_empty_root(vace_root, tmp_path):
    root, _, _ = vace_root
    items = list(iter_dataset(dataset_cfg("vace_benchmark", root, entries=["outpainting"])))
    assert isinstance(items[0], FailedItem) and "entry 'outpainting' not found" in items[0].error
    with pytest.raises(DataError, match="no masked entries"):
        list(iter_dataset(dataset_cfg("vace_benchmark", tmp_path)))


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not EVAL_CLIPS.exists(), reason="held-out eval clips not present")
def test_unseen_clips_run_end_to_end_in_both_layouts(tmp_path):
    """car-roundabout, dance-twirl, dogs-jump as a FiVE tree and a PIE mapping file in one root;
    one hard_lock multirun over both datasets: every item ok, labels kept, PIE as T = 1."""
    root = tmp_path / "bench"
    mapping = {}
    for index, (name, type_id) in enumerate([("car-roundabout", 1), ("dance-twirl", 3), ("dogs-jump", 6)]):
        video, masks = clip(EVAL_CLIPS / name, 9)
        write_five_clip(root, name, video, masks)
        write_five_prompts(root, type_id, [five_entry(name, type_id, f"a [{name}]", f"a golden [{name}]")])
        write_pie_image(root, f"{type_id}_x/{index:012d}.jpg", square(video[0]))
        mapping[f"{index:012d}"] = pie_entry(f"{type_id}_x/{index:012d}.jpg", str(type_id), square(masks[0]))
    write_pie_mapping(root, mapping)

    result = run_module(
        "benchmarks.run", "-m", "dataset=five_bench,pie_bench", f"++dataset.root={root}",
        "method=hard_lock", "metrics=fast", "sampler.steps=2", "dataset.prepare.max_frames=5",
        "dataset.prepare.height=32", "dataset.prepare.width=32", "run.num_threads=1",
        "run.save_comparison=false", f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=600)

    assert result.returncode == 0, result.stdout[-3000:]
    five = pd.read_parquet(tmp_path / "sweep" / "0_hard_lock" / "results.parquet")
    pie = pd.read_parquet(tmp_path / "sweep" / "1_hard_lock" / "results.parquet")
    assert (five["status"] == "ok").all() and (pie["status"] == "ok").all(), (five, pie)
    assert sorted(five["edit_type"]) == ["Color Alteration", "Object Removal", "Object Replacement (Rigid)"]
    assert sorted(pie["edit_type"]) == ["1_change_object", "3_delete_object", "6_change_attribute_color"]
    assert len(five) == len(pie) == 3
    summary = json.loads((tmp_path / "sweep" / "1_hard_lock" / "summary.json").read_text())
    assert summary["counts"] == {"ok": 3, "failed": 0, "total": 3}
    assert np.isnan(pie["warp_error"]).all() and np.isfinite(pie["bg_psnr"]).all()  # one frame
    five_table = Report.load(tmp_path / "sweep" / "0_hard_lock").table("five")
    names = [name for name, _, _ in five_table.rows]
    assert names == [f"Hard lock (KV-Edit) · {t}" for t in
                     ("Object Replacement (Rigid)", "Color Alteration", "Object Removal", "mean over types")]
    psnr = [float(cells[0].text) for _, _, cells in five_table.rows]
    assert psnr[-1] == pytest.approx(np.mean(psnr[:-1]), abs=0.01)
    assert "FiVE-Acc: out of scope" in render(five_table, "markdown")
    kvedit = Report.load(tmp_path / "sweep" / "1_hard_lock").text("kvedit")  # KV-Edit's layout on PIE
    assert "| Hard lock (KV-Edit)" in kvedit and "3/3" in kvedit
