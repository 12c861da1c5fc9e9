"""Model-based metrics (LPIPS, CLIP, VBench, RAFT) against their reference packages, with tiny
seeded random models or weights files written to tmp dirs; nothing is downloaded."""

from __future__ import annotations

import json
import math

import lpips
import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import cpu_metrics
from PIL import Image
from torchvision import transforms

from kvlock.metrics import MetricInputs, evaluate, shared_cache
from kvlock.metrics.consistency import vbench_similarity
from kvlock.metrics.flow import source_motion
from kvlock.metrics.lpips_model import load_lpips

TINY_CLIP = "kvlock-test-tiny-clip"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
FAKE_DINO_HUBCONF = """\
import torch

dependencies = ["torch"]


def dino_vitb16(pretrained=True, **kwargs):
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 16, 16), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Registers a 2-layer open_clip config (random init only) and returns its name."""
    path = tmp_path_factory.mktemp("open_clip") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(path)
    return TINY_CLIP


@pytest.fixture()
def no_weights(tmp_path) -> dict:
    """Settings pointing every weights lookup at an empty dir, with random weights allowed."""
    (tmp_path / "weights").mkdir()
    return {"weights_dir": str(tmp_path / "weights"), "allow_random_weights": True}


def clip_inputs(gt: bool = False) -> MetricInputs:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    edited = source.copy()
    mask = np.zeros((4, 32, 48), bool)
    mask[:3, 4:20, 8:30] = True  # the last frame has an empty mask
    edited[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    target = (
        np.clip(edited.astype(int) + rng.integers(-25, 26, edited.shape), 0, 255).astype(np.uint8)
        if gt
        else None
    )
    return MetricInputs(
        source, edited, mask, "a red ball on a table", "a green cube on a table", target
    )


def reference_clip(name: str, seed: int = 0):
    """open_clip model, inference transform and tokenizer, built directly (same seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(name)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)

    def images(frames):
        with torch.no_grad():
            return F.normalize(
                model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames])),
                dim=-1,
            )

    def texts(prompts):
        with torch.no_grad():
            return F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)

    return model, images, texts


# --- missing weights -------------------------------------------------------------------------


def test_missing_weights_give_the_marker_not_a_number(tmp_path):
    names = [
        "bg_lpips",
        "fg_lpips_gt",
        "clip_text",
        "clip_text_edit",
        "clip_dir",
        "clip_frame_consistency",
        "vbench_bc",
        "vbench_sc",
        "warp_error",
    ]
    metrics = cpu_metrics(
        {"names": names, "weights_dir": str(tmp_path), "options": {"warp_error": {"flow": "raft"}}}
    )
    row = evaluate(clip_inputs(gt=True), metrics)
    def marker(model: str, file: str) -> str:
        return f"not computed: {model} weights unavailable (run `python -m kvlock.weights fetch {file}`)"

    clip = marker("open_clip ViT-L-14-quickgelu/openai", "clip-vit-l-14")
    assert json.loads(row["metrics_not_computed"]) == {
        "bg_lpips": marker("LPIPS squeeze", "lpips-squeeze"),
        "fg_lpips_gt": marker("LPIPS squeeze", "lpips-squeeze"),
        "clip_text": clip,
        "clip_text_edit": clip,
        "clip_dir": clip,
        "clip_frame_consistency": clip,
        "vbench_bc": marker("open_clip ViT-B-32/openai", "clip-vit-b-32"),
        "vbench_sc": marker("DINO ViT-B/16", "dino-vitb16"),
        "warp_error": marker("torchvision raft_large", "raft-large"),
    }
    assert all(math.isnan(row[name]) for name in names)
    assert row["metrics_random_weights"] is False and json.loads(row["metrics_models"]) == {}


# --- LPIPS -----------------------------------------------------------------------------------


def lpips_reference(
    model, inputs: MetricInputs, reference: np.ndarray, keep: np.ndarray
) -> list[float]:
    def unit(frames):
        return (
            torch.from_numpy(frames).permute(0, 3, 1, 2).float()
            / 255
            * torch.from_numpy(keep)[:, None].float()
        )

    with torch.no_grad():
        return model(unit(inputs.edited) * 2 - 1, unit(reference) * 2 - 1).flatten().tolist()


@pytest.mark.filterwarnings(
    "ignore:.*deprecated since 0.13"
)  # lpips passes `pretrained=` to torchvision
def test_lpips_metrics_match_the_lpips_package_with_the_same_random_backbone(no_weights):
    inputs = clip_inputs(gt=True)
    results = {
        m.name: m.compute(inputs)
        for m in cpu_metrics({"names": ["bg_lpips", "fg_lpips_gt"], **no_weights})
    }
    torch.manual_seed(0)
    model = lpips.LPIPS(net="squeeze", pnet_rand=True, verbose=False).eval()
    np.testing.assert_allclose(
        results["bg_lpips"].per_frame,
        lpips_reference(model, inputs, inputs.source, ~inputs.mask),
        rtol=1e-5,
    )
    fg = lpips_reference(model, inputs, inputs.target_gt, inputs.mask)[
        :3
    ]  # frame 3: empty mask -> undefined
    np.testing.assert_allclose(results["fg_lpips_gt"].per_frame[:3], fg, rtol=1e-5)
    assert math.isnan(results["fg_lpips_gt"].per_frame[3]) and results[
        "fg_lpips_gt"
    ].value == pytest.approx(np.mean(fg))
    assert (
        results["bg_lpips"].random_weights
        and results["bg_lpips"].model == "LPIPS squeeze (random init, seed 0)"
    )


@pytest.mark.filterwarnings(
    "ignore:.*deprecated since 0.13"
)  # lpips passes `pretrained=` to torchvision
def test_lpips_loads_a_torchvision_backbone_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # torch.hub.get_dir() -> tmp_path/hub
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(123)
    url = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1.url
    torch.save(torchvision.models.squeezenet1_1().state_dict(), checkpoints / url.rsplit("/", 1)[1])
    load_lpips.cache_clear()
    inputs = clip_inputs()
    result = cpu_metrics({"names": ["bg_lpips"]})[0].compute(inputs)
    load_lpips.cache_clear()
    reference = lpips.LPIPS(
        net="squeeze", verbose=False
    ).eval()  # torchvision loads the same cached file
    assert result.random_weights is False and result.model == "LPIPS squeeze"
    np.testing.assert_allclose(
        result.per_frame, lpips_reference(reference, inputs, inputs.source, ~inputs.mask), rtol=1e-5
    )


# --- CLIP ------------------------------------------------------------------------------------


def test_clip_metrics_equal_open_clip_features_computed_directly(tiny_clip, no_weights):
    inputs = clip_inputs()
    names = ["clip_text", "clip_text_edit", "clip_dir", "clip_frame_consistency"]
    cfg = {"names": names, "clip_model": tiny_clip, **no_weights}
    results = {m.name: m.compute(inputs) for m in cpu_metrics(cfg)}
    _, images, texts = reference_clip(tiny_clip)
    edited, source = images(inputs.edited), images(inputs.source)
    text_source, text_target = texts([inputs.source_prompt, inputs.target_prompt])

    np.testing.assert_allclose(
        results["clip_text"].per_frame,
        (100 * edited @ text_target).clamp(min=0),
        rtol=1e-4,
        atol=1e-4,
    )
    masked = images(inputs.edited[:3] * inputs.mask[:3, ..., None].astype(np.uint8))
    np.testing.assert_allclose(
        results["clip_text_edit"].per_frame[:3],
        (100 * masked @ text_target).clamp(min=0),
        rtol=1e-4,
        atol=1e-4,
    )
    assert math.isnan(results["clip_text_edit"].per_frame[3])
    direction = F.cosine_similarity(edited - source, (text_target - text_source)[None], dim=-1)
    np.testing.assert_allclose(results["clip_dir"].per_frame, direction, rtol=1e-4, atol=1e-5)
    consecutive = [max(0.0, float(edited[t] @ edited[t - 1])) for t in range(1, 4)]
    assert results["clip_frame_consistency"].value == pytest.approx(np.mean(consecutive), rel=1e-5)
    all_pairs = cpu_metrics(
        {
            **cfg,
            "names": ["clip_frame_consistency"],
            "options": {"clip_frame_consistency": {"variant": "all_pairs"}},
        }
    )[0]
    sim = (edited @ edited.T).numpy()
    assert all_pairs.compute(inputs).value == pytest.approx(
        sim[~np.eye(4, dtype=bool)].mean(), rel=1e-5
    )
    assert all(
        r.random_weights and r.model == f"open_clip {tiny_clip}/openai (random init, seed 0)"
        for r in results.values()
    )


def test_clip_dir_caches_source_features_and_refuses_equal_prompts(tiny_clip, no_weights, tmp_path):
    cfg = {
        "names": ["clip_dir"],
        "clip_model": tiny_clip,
        "cache_dir": str(tmp_path / "cache"),
        **no_weights,
    }
    clip_dir = cpu_metrics(cfg)[0]
    inputs = clip_inputs()
    first = clip_dir.compute(inputs)
    other = MetricInputs(
        inputs.source,
        inputs.source[::-1].copy(),
        inputs.mask,
        inputs.source_prompt,
        inputs.target_prompt,
    )
    clip_dir.compute(other)
    cache = shared_cache(str(tmp_path / "cache"), 32)
    assert (cache.hits, cache.misses) == (1, 1) and math.isfinite(first.value)
    same = MetricInputs(inputs.source, inputs.edited, inputs.mask, "a cat", "a cat")
    assert clip_dir.compute(same).reason == "undefined: source and target prompts are identical"


def test_clip_loads_a_weights_file(tiny_clip, tmp_path):
    trained, images, texts = reference_clip(tiny_clip, seed=7)
    torch.save(trained.state_dict(), tmp_path / "tiny.pt")
    cfg = {
        "names": ["clip_text"],
        "clip_model": tiny_clip,
        "clip_pretrained": str(tmp_path / "tiny.pt"),
        "weights_dir": str(tmp_path),
    }
    inputs = clip_inputs()
    result = cpu_metrics(cfg)[0].compute(inputs)
    expected = (100 * images(inputs.edited) @ texts([inputs.target_prompt])[0]).clamp(min=0).mean()
    assert (
        result.random_weights is False
        and result.model == f"open_clip {tiny_clip}/{tmp_path / 'tiny.pt'}"
    )
    assert result.value == pytest.approx(float(expected), rel=1e-4)


# --- VBench ----------------------------------------------------------------------------------


def vbench_loop(features: torch.Tensor) -> float:
    """VBench background/subject_consistency per-video loop, verbatim in structure."""
    video_sim, first, former = 0.0, None, None
    for i in range(len(features)):
        feature = features[i].unsqueeze(0)
        if i == 0:
            first = feature
        else:
            sim_pre = max(0.0, F.cosine_similarity(former, feature).item())
            sim_fir = max(0.0, F.cosine_similarity(first, feature).item())
            video_sim += (sim_pre + sim_fir) / 2
        former = feature
    return video_sim / (len(features) - 1)


def test_vbench_formula_matches_the_vbench_loop():
    features = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert float(vbench_similarity(features).mean()) == pytest.approx(
        vbench_loop(features), rel=1e-6
    )


def test_vbench_bc_matches_vbench_clip_transform_and_loop(tiny_clip, no_weights):
    inputs = clip_inputs()
    cfg = {
        "names": ["vbench_bc"],
        "options": {"vbench_bc": {"model": tiny_clip, "pretrained": None}},
        **no_weights,
    }
    result = cpu_metrics(cfg)[0].compute(inputs)
    model, _, _ = reference_clip(tiny_clip)
    clip_transform = transforms.Compose(
        [  # VBench utils.clip_transform(n_px), n_px = model input size
            transforms.Resize(  # current VBench utils.clip_transform: antialias=False
                64, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False
            ),
            transforms.CenterCrop(64),
            transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize(
                (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
            ),
        ]
    )
    with torch.no_grad():
        features = F.normalize(
            # VBench load_video gives uint8 frames; the transform resizes them as uint8
            model.encode_image(clip_transform(torch.from_numpy(inputs.edited).permute(0, 3, 1, 2))),
            dim=-1,
            p=2,
        )
    assert result.value == pytest.approx(vbench_loop(features), rel=1e-5)
    assert result.model == f"open_clip {tiny_clip} (random init, seed 0)"


def test_vbench_sc_loads_dino_from_the_hub_cache(tmp_path):
    repo = tmp_path / "facebookresearch_dino_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(FAKE_DINO_HUBCONF)
    namespace: dict = {}
    exec(FAKE_DINO_HUBCONF, namespace)
    torch.manual_seed(3)
    dino = namespace["dino_vitb16"]().eval()
    (tmp_path / "checkpoints").mkdir()
    torch.save(dino.state_dict(), tmp_path / "checkpoints" / "dino_vitbase16_pretrain.pth")
    inputs = clip_inputs()
    result = cpu_metrics({"names": ["vbench_sc"], "weights_dir": str(tmp_path)})[0].compute(inputs)
    dino_transform = transforms.Compose(
        [  # VBench utils.dino_transform(224): Resize(size=n_px, antialias=False) on uint8
            transforms.Resize(size=224, antialias=False),
            transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    with torch.no_grad():
        features = F.normalize(
            dino(dino_transform(torch.from_numpy(inputs.edited).permute(0, 3, 1, 2))), dim=-1, p=2
        )
    assert result.random_weights is False and result.model == "DINO ViT-B/16"
    assert result.value == pytest.approx(vbench_loop(features), rel=1e-5)


def test_vbench_sc_random_stand_in_is_recorded(no_weights):
    cfg = {
        "names": ["vbench_sc", "vbench_bc"],
        "options": {"vbench_sc": {"random_arch": "vit_tiny"}},
        **no_weights,
    }
    sc = cpu_metrics(cfg)[0]
    constant = np.full((3, 32, 48, 3), 90, np.uint8)
    result = sc.compute(MetricInputs(constant, constant, np.zeros((3, 32, 48), bool)))
    assert result.value == pytest.approx(1.0) and result.random_weights
    assert (
        result.model == "torchvision vit_tiny standing in for DINO ViT-B/16 (random init, seed 0)"
    )
    assert sc.label == "SC (DINO ViT-B/16)"


# --- RAFT ------------------------------------------------------------------------------------


def test_warp_error_with_random_raft_is_recorded(no_weights):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)  # padded to 128x128 for RAFT
    warp = cpu_metrics({"names": ["warp_error"], "flow": "raft", **no_weights})[0]
    row = evaluate(MetricInputs(source, source[::-1].copy(), np.zeros((2, 40, 56), bool)), [warp])
    assert math.isfinite(row["warp_error"]) and row["metrics_random_weights"] is True
    assert json.loads(row["metrics_models"]) == {
        "warp_error": "torchvision raft_large (random init, seed 0)"
    }
    assert warp.label == "WarpErr (RAFT)"
    motion = source_motion(source, warp.settings)
    assert motion["flow"].shape == (1, 40, 56, 2) and motion["valid"].shape == (1, 40, 56)
