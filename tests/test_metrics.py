"""Weight-free metrics against their references (torchmetrics, skimage, numpy), the contract,
the registry, the configs and the source-feature cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import cpu_metrics
from omegaconf import OmegaConf
from scipy.ndimage import map_coordinates
from skimage.metrics import structural_similarity
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from kvlock.metrics import (
    FeatureCache,
    Metric,
    MetricInputs,
    MetricSettings,
    available_metrics,
    build_metrics,
    evaluate,
    metric_info,
)
from kvlock.metrics.base import NO_BACKGROUND, NO_GROUND_TRUTH

CONF = Path(__file__).resolve().parents[1] / "conf" / "metrics"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def metric(name: str, **settings) -> Metric:
    return cpu_metrics({"names": [name], **settings})[0]


def masked_edit(seed: int = 0, frames: int = 5, size=(32, 40)) -> MetricInputs:
    """Random clip; the edit replaces a box and adds small noise to the background."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (frames, *size, 3), dtype=np.uint8)
    mask = np.zeros((frames, *size), bool)
    mask[:, 8:20, 10:26] = True
    noise = rng.integers(-12, 13, source.shape)
    edited = np.clip(source.astype(int) + noise, 0, 255).astype(np.uint8)
    edited[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    return MetricInputs(source, edited, mask, "a cat on grass", "a dog on grass")


def masked_unit(inputs: MetricInputs, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame t of (edited, source) in [0, 1] times (1 - mask), float64 (H, W, 3)."""
    keep = 1.0 - inputs.mask[t, ..., None]
    return inputs.edited[t] / 255.0 * keep, inputs.source[t] / 255.0 * keep


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


# --- registry and configs --------------------------------------------------------------------


def test_unknown_metric_lists_available():
    with pytest.raises(ValueError) as err:
        cpu_metrics({"names": ["bg_psnr", "bg_psnrr"]})
    assert (
        str(err.value)
        == f"Unknown metric 'bg_psnrr'. Available: {', '.join(sorted(available_metrics()))}"
    )
    assert "warp_error" in available_metrics() and len(available_metrics()) == 23


def test_unknown_option_and_key_are_errors():
    with pytest.raises(ValueError, match="Metric 'clip_frame_consistency' has no option 'mode'"):
        cpu_metrics(
            {
                "names": ["clip_frame_consistency"],
                "options": {"clip_frame_consistency": {"mode": "x"}},
            }
        )
    with pytest.raises(ValueError, match="Unknown clip_frame_consistency variant 'pairs'"):
        cpu_metrics(
            {
                "names": ["clip_frame_consistency"],
                "options": {"clip_frame_consistency": {"variant": "pairs"}},
            }
        )
    with pytest.raises(ValueError, match=r"Unknown metrics config key\(s\) \['frame_strid'\]"):
        cpu_metrics({"names": ["bg_psnr"], "frame_strid": 2})
    with pytest.raises(ValueError, match="Unknown flow estimator 'pwc'"):
        metric("warp_error", flow="pwc")
    with pytest.raises(ValueError, match="Unknown lpips_net 'squeezenet'"):
        metric("bg_lpips", lpips_net="squeezenet")
    with pytest.raises(ValueError, match="Unknown open_clip model 'ViT-L-14-quickgeLU'"):
        metric("clip_dir", clip_model="ViT-L-14-quickgeLU")


def test_configs_build_and_fast_is_weight_free():
    default = build_metrics(OmegaConf.load(CONF / "default.yaml"))
    assert [m.name for m in default] == OmegaConf.load(CONF / "default.yaml").names
    assert {m.name for m in default} == set(available_metrics())
    fast = build_metrics(OmegaConf.load(CONF / "fast.yaml"))
    row = evaluate(masked_edit(), fast)
    assert {m.name for m in fast} == {
        "bg_psnr",
        "bg_psnr_bgonly",
        "bg_mse",
        "bg_ssim",
        "flicker",
        "warp_error",
        "fg_psnr_gt",
        "oracle_edit_acc",
    }
    no_gt = {"fg_psnr_gt": NO_GROUND_TRUTH, "oracle_edit_acc": NO_GROUND_TRUTH}
    assert json.loads(row["metrics_not_computed"]) == no_gt
    assert row["metrics_random_weights"] is False and json.loads(row["metrics_models"]) == {}
    assert all(math.isfinite(row[m.name]) for m in fast if m.name not in no_gt)


def test_metric_info_and_per_metric_setting_override():
    metrics = cpu_metrics(
        {
            "names": ["bg_lpips", "warp_error", "bg_mse"],
            "options": {"warp_error": {"flow": "farneback"}},
        }
    )
    info = metric_info(metrics)
    assert info["warp_error"] == {
        "higher_is_better": False,
        "version": "1",
        "variant": "Farnebäck",
        "label": "WarpErr (Farnebäck)",
        "scale": 1.0,
    }
    assert info["bg_lpips"]["label"] == "BG LPIPS (squeeze)" and info["bg_lpips"]["scale"] == 1e3
    assert info["bg_mse"]["scale"] == 1e4 and info["bg_mse"]["higher_is_better"] is False
    assert metric("warp_error").label == "WarpErr (DIS)"


# --- background preservation -----------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
def test_background_metrics_match_torchmetrics_and_numpy(stride):
    inputs = masked_edit()
    frames = range(0, inputs.num_frames, stride)
    results = {
        m.name: m.compute(inputs)
        for m in cpu_metrics(
            {"names": ["bg_psnr", "bg_mse", "bg_ssim", "bg_psnr_bgonly"], "frame_stride": stride}
        )
    }
    psnr_ref, ssim_ref, mse_np, psnr_np, bgonly_np = [], [], [], [], []
    for t in frames:
        edited, source = masked_unit(inputs, t)
        psnr_ref.append(float(PeakSignalNoiseRatio(data_range=1.0)(chw(edited), chw(source))))
        ssim_ref.append(
            float(StructuralSimilarityIndexMeasure(data_range=1.0)(chw(edited), chw(source)))
        )
        mse = np.mean((edited - source) ** 2)  # PIE-Bench: all 3*H*W values
        mse_np.append(mse)
        psnr_np.append(10 * np.log10(1 / mse))
        bg = ~inputs.mask[t]
        bgonly_np.append(10 * np.log10(1 / np.mean((edited[bg] - source[bg]) ** 2)))
    assert len(results["bg_psnr"].per_frame) == len(frames)
    np.testing.assert_allclose(results["bg_psnr"].per_frame, psnr_ref, rtol=1e-5)
    np.testing.assert_allclose(results["bg_psnr"].per_frame, psnr_np, rtol=1e-5)
    np.testing.assert_allclose(results["bg_ssim"].per_frame, ssim_ref, rtol=1e-5)
    np.testing.assert_allclose(results["bg_mse"].per_frame, mse_np, rtol=1e-5)
    np.testing.assert_allclose(results["bg_psnr_bgonly"].per_frame, bgonly_np, rtol=1e-5)
    assert results["bg_psnr"].value == pytest.approx(np.mean(psnr_np), rel=1e-5)
    assert (
        results["bg_psnr_bgonly"].value < results["bg_psnr"].value
    )  # edit pixels no longer count as 0 error
    assert results["bg_psnr"].flags == {"bg_psnr_capped": 0}


def test_bg_ssim_agrees_with_skimage():
    inputs = masked_edit(seed=1, frames=3, size=(48, 56))
    result = metric("bg_ssim").compute(inputs)
    for t, value in enumerate(result.per_frame):
        edited, source = masked_unit(inputs, t)
        reference = structural_similarity(
            edited,
            source,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert value == pytest.approx(reference, abs=2e-3)


def test_full_frame_mask_is_nan_with_reason():
    inputs = masked_edit()
    inputs.mask[:] = True
    metrics = cpu_metrics({"names": ["bg_psnr", "bg_psnr_bgonly", "bg_mse", "bg_ssim"]})
    row = evaluate(inputs, metrics)
    for m in metrics:
        assert math.isnan(row[m.name])
    assert json.loads(row["metrics_not_computed"]) == {m.name: NO_BACKGROUND for m in metrics}
    assert row["bg_psnr_capped"] == 0  # undefined frames are not "identical backgrounds"


def test_one_full_frame_is_skipped_in_the_mean():
    inputs = masked_edit()
    inputs.mask[2] = True
    result = metric("bg_mse").compute(inputs)
    assert math.isnan(result.per_frame[2]) and result.reason is None
    assert result.value == pytest.approx(
        np.mean([v for i, v in enumerate(result.per_frame) if i != 2])
    )


def test_identical_background_is_capped_and_flagged():
    inputs = masked_edit()
    inputs.edited[~inputs.mask] = inputs.source[~inputs.mask]
    row = evaluate(inputs, cpu_metrics({"names": ["bg_psnr", "bg_psnr_bgonly", "bg_mse"]}))
    assert row["bg_psnr"] == 100.0 and row["bg_psnr_capped"] == inputs.num_frames
    assert row["bg_psnr_bgonly"] == 100.0 and row["bg_psnr_bgonly_capped"] == inputs.num_frames
    assert row["bg_mse"] == 0.0
    capped = metric("bg_psnr", psnr_cap=60.0).compute(inputs)
    assert capped.value == 60.0 and all(math.isfinite(v) for v in capped.per_frame)


# --- ground truth ----------------------------------------------------------------------------


def test_fg_psnr_gt_uses_the_mask_pixels_only():
    inputs = masked_edit()
    assert metric("fg_psnr_gt").compute(inputs).reason == NO_GROUND_TRUTH
    rng = np.random.default_rng(5)
    gt = np.clip(
        inputs.edited.astype(int) + rng.integers(-20, 21, inputs.edited.shape), 0, 255
    ).astype(np.uint8)
    inputs = MetricInputs(inputs.source, inputs.edited, inputs.mask, target_gt=gt)
    m = inputs.mask
    expected = [
        10 * np.log10(1 / np.mean((inputs.edited[t][m[t]] / 255.0 - gt[t][m[t]] / 255.0) ** 2))
        for t in range(5)
    ]
    result = metric("fg_psnr_gt").compute(inputs)
    np.testing.assert_allclose(result.per_frame, expected, rtol=1e-5)
    assert result.flags == {"fg_psnr_gt_capped": 0} and result.reason is None


# --- inputs ----------------------------------------------------------------------------------


def test_inputs_resize_edited_and_check_shapes():
    inputs = masked_edit()
    big = np.repeat(np.repeat(inputs.edited, 2, axis=1), 2, axis=2)
    resized = MetricInputs(inputs.source, big, inputs.mask)
    assert resized.edited.shape == inputs.source.shape
    np.testing.assert_array_equal(
        resized.edited, inputs.edited
    )  # INTER_AREA of 2x2 repeats is exact
    assert resized.source_key == inputs.source_key and len(resized.source_key) == 64
    with pytest.raises(ValueError, match="edited has 4 frames, the source has 5"):
        MetricInputs(inputs.source, inputs.edited[:4], inputs.mask)
    with pytest.raises(ValueError, match="mask shape"):
        MetricInputs(inputs.source, inputs.edited, inputs.mask[:, :10])
    with pytest.raises(ValueError, match=r"edited must be \(T, H, W, 3\) uint8"):
        MetricInputs(inputs.source, inputs.edited.astype(np.float32), inputs.mask)


# --- temporal, weight-free -------------------------------------------------------------------


def moving_texture(frames: int = 5, size=(48, 64), step=(1, 2), seed: int = 0) -> np.ndarray:
    """A smooth random texture translating by `step` (dy, dx) pixels per frame, (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(
        rng.integers(0, 256, (size[0] + 20, size[1] + 30, 3), dtype=np.uint8), (0, 0), 2
    )
    dy, dx = step
    return np.stack(
        [canvas[dy * t : dy * t + size[0], dx * t : dx * t + size[1]] for t in range(frames)]
    )


def test_flicker_matches_vbench_formula_and_constant_video_scores_one():
    source = moving_texture()
    rng = np.random.default_rng(3)
    edited = np.clip(source.astype(int) + rng.integers(-30, 31, source.shape), 0, 255).astype(
        np.uint8
    )
    mask = np.zeros(source.shape[:3], bool)
    result = metric("flicker").compute(MetricInputs(source, edited, mask))
    mae = [
        np.mean(cv2.absdiff(a.astype(np.float32), b.astype(np.float32)))
        for a, b in zip(edited[:-1], edited[1:])
    ]
    assert result.value == pytest.approx((255.0 - np.mean(mae)) / 255.0, rel=1e-6)
    constant = np.full_like(source, 77)
    assert metric("flicker").compute(MetricInputs(constant, constant, mask)).value == 1.0


def reference_warp_error(source: np.ndarray, edited: np.ndarray, calc) -> float:
    """Lai et al. evaluate_WarpError.py + detect_occlusion, in numpy/scipy (exact bilinear warp)."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in source]
    height, width = gray[0].shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)

    def warp(image, flow):  # image(x + flow(x)), edge-clamped, per channel
        coords = [ys + flow[..., 1], xs + flow[..., 0]]
        return np.stack(
            [
                map_coordinates(image[..., c], coords, order=1, mode="nearest")
                for c in range(image.shape[-1])
            ],
            -1,
        )

    errors = []
    for t in range(len(source) - 1):
        fw, bw = (
            calc(gray[t], gray[t + 1], None).astype(np.float64),
            calc(gray[t + 1], gray[t], None).astype(np.float64),
        )
        bw_w = warp(bw, fw)
        mag = lambda f: f[..., 0] ** 2 + f[..., 1] ** 2  # noqa: E731
        occluded = mag(fw + bw_w) > 0.01 * (mag(bw_w) + mag(fw)) + 0.5
        du, dv = np.zeros_like(fw), np.zeros_like(fw)
        du[:, :-1] = fw[:, :-1] - fw[:, 1:]
        dv[:-1, :] = fw[:-1, :] - fw[1:, :]
        occluded |= (du**2 + dv**2).sum(-1) > 0.01 * mag(fw) + 0.002
        noc = np.repeat((~occluded)[..., None], 3, axis=-1).astype(np.float64)
        diff = (warp(edited[t + 1] / 255.0, fw) - edited[t] / 255.0) * noc
        count = noc.sum() or diff.size
        errors.append(np.sum(diff**2) / count)
    return float(np.mean(errors))


@pytest.mark.parametrize(
    "flow, calc",
    [
        (
            "dis",
            lambda a, b, f: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(
                a, b, f
            ),
        ),
        (
            "farneback",
            lambda a, b, f: cv2.calcOpticalFlowFarneback(a, b, f, 0.5, 3, 15, 3, 5, 1.2, 0),
        ),
    ],
)
def test_warp_error_matches_numpy_reference(flow, calc, tmp_path):
    source = moving_texture()
    rng = np.random.default_rng(4)
    edited = source.copy()
    edited[:, 10:30, 20:40] = np.clip(
        edited[:, 10:30, 20:40].astype(int) + rng.integers(-40, 41, (5, 1, 1, 3)), 0, 255
    )
    mask = np.zeros(source.shape[:3], bool)
    result = metric("warp_error", flow=flow, cache_dir=str(tmp_path)).compute(
        MetricInputs(source, edited, mask)
    )
    assert result.value == pytest.approx(reference_warp_error(source, edited, calc), rel=1e-4)
    assert len(result.per_frame) == 4 and result.value > 1e-4


def test_warp_error_is_zero_for_a_constant_video_and_small_for_the_source():
    source = moving_texture()
    mask = np.zeros(source.shape[:3], bool)
    constant = np.full_like(source, 120)
    assert metric("warp_error").compute(MetricInputs(source, constant, mask)).value == 0.0
    flickering = source.copy()
    flickering[1::2] = np.clip(flickering[1::2].astype(int) + 40, 0, 255)
    faithful = metric("warp_error").compute(MetricInputs(source, source, mask)).value
    assert (
        faithful < 0.1 * metric("warp_error").compute(MetricInputs(source, flickering, mask)).value
    )


# --- source-feature cache --------------------------------------------------------------------


def test_source_flow_is_cached_across_edits_and_on_disk(tmp_path):
    source = moving_texture()
    mask = np.zeros(source.shape[:3], bool)
    warp = metric("warp_error", cache_dir=str(tmp_path))
    cache = warp_cache(tmp_path)
    first = warp.compute(MetricInputs(source, source, mask))
    assert (cache.hits, cache.misses) == (0, 1)
    second = warp.compute(MetricInputs(source, np.full_like(source, 9), mask))
    assert (cache.hits, cache.misses) == (1, 1) and second.value == 0.0 and first.value > 0
    assert len(list(tmp_path.glob("*.pt"))) == 1
    fresh = FeatureCache(disk_dir=tmp_path)  # a new process: the features come from disk
    key = (
        f"{MetricInputs(source, source, mask).source_key}|flow|opencv-{cv2.__version__}-dis-medium"
    )
    features = fresh.get_or_compute(key, lambda: pytest.fail("recomputed a cached source flow"))
    assert (
        fresh.hits == 1
        and features["flow"].shape == (4, 48, 64, 2)
        and features["valid"].dtype == torch.bool
    )


def warp_cache(cache_dir: Path) -> FeatureCache:
    from kvlock.metrics import shared_cache

    return shared_cache(str(cache_dir), MetricSettings().cache_size)


def test_lru_evicts_oldest():
    cache = FeatureCache(max_items=2)
    for key in "abc":
        cache.get_or_compute(key, lambda: {"x": torch.zeros(1)})
    cache.get_or_compute("c", lambda: {"x": torch.ones(1)})
    cache.get_or_compute("a", lambda: {"x": torch.ones(1)})
    assert (cache.hits, cache.misses) == (1, 4)


# --- evaluate --------------------------------------------------------------------------------


class Broken(Metric):
    name, title, higher_is_better = "broken", "Broken", True

    def _compute(self, inputs):
        raise RuntimeError("boom")


def test_evaluate_records_a_failing_metric_and_keeps_the_others():
    row = evaluate(masked_edit(), [Broken(MetricSettings()), metric("bg_mse")])
    assert math.isnan(row["broken"]) and math.isfinite(row["bg_mse"])
    assert json.loads(row["metrics_not_computed"]) == {"broken": "failed: RuntimeError: boom"}


def test_oracle_edit_acc_reads_the_ground_truth_edit_and_rejects_the_unedited_source():
    from kvlock.data.synthetic import make_synthetic_edits

    metric = build_metrics({"names": ["oracle_edit_acc"]})
    for e in make_synthetic_edits(2, 9, 48, 48, seed=7):
        gt = evaluate(MetricInputs(e.frames, e.target_frames, e.mask, target_gt=e.target_frames), metric)
        src = evaluate(MetricInputs(e.frames, e.frames, e.mask, target_gt=e.target_frames), metric)
        assert gt["oracle_edit_acc"] == 1.0, e.edit_id
        assert src["oracle_edit_acc"] == 0.0, e.edit_id
        if e.edit_type == "color_change":  # same shape, other colour
            assert (src["oracle_edit_color_ok"], src["oracle_edit_shape_ok"]) == (0, 1)
    no_gt = evaluate(MetricInputs(e.frames, e.frames, e.mask), metric)
    assert math.isnan(no_gt["oracle_edit_acc"]) and "ground-truth" in no_gt["metrics_not_computed"]


def test_oracle_color_acc_scores_the_colour_alone():
    from kvlock.data.synthetic import make_synthetic_edits

    metric = build_metrics({"names": ["oracle_color_acc"]})
    edits = {e.edit_type: e for e in make_synthetic_edits(2, 9, 48, 48, seed=7)}
    for e in edits.values():
        gt = evaluate(MetricInputs(e.frames, e.target_frames, e.mask, target_gt=e.target_frames), metric)
        assert gt["oracle_color_acc"] == 1.0, e.edit_id
    colour, shape = edits["color_change"], edits["shape_change"]
    unedited = evaluate(MetricInputs(colour.frames, colour.frames, colour.mask,
                                     target_gt=colour.target_frames), metric)
    assert unedited["oracle_color_acc"] == 0.0  # the source colour is not the requested one
    # a shape change keeps the colour: the unedited source passes on colour (shape is not scored)
    kept = evaluate(MetricInputs(shape.frames, shape.frames, shape.mask, target_gt=shape.target_frames),
                    metric)
    assert kept["oracle_color_acc"] == 1.0
    no_gt = evaluate(MetricInputs(colour.frames, colour.frames, colour.mask), metric)
    assert math.isnan(no_gt["oracle_color_acc"]) and "ground-truth" in no_gt["metrics_not_computed"]
