"""The metric-model files: which metric needs which file, from where, kept in which cache."""

from __future__ import annotations

from dataclasses import dataclass

FETCH_COMMAND = "python -m kvlock.weights fetch"


@dataclass(frozen=True)
class ModelFile:
    """One weights file.

    kind "hf": `filename` in Hugging Face repo `repo` (the HF cache; `weights_dir` replaces it);
    kind "url": `url` saved as `<torch hub dir>/<subdir>/<basename>`, where the library that
    loads it looks (torchvision/DINO: `checkpoints`, pyiqa: `pyiqa`). `sha256` is the full
    digest or a prefix (torch.hub's file-name convention); None: HF files are checked against
    the LFS digest the server reports; other files are unverified (status says so).
    """

    name: str
    metrics: tuple[str, ...]
    model: str
    kind: str
    filename: str
    repo: str = ""
    url: str = ""
    subdir: str = "checkpoints"
    sha256: str | None = None
    hub_repo: str = ""  # torch hub code repo fetched with the file ("owner/name:ref")

    @property
    def fetch_command(self) -> str:
        return f"{FETCH_COMMAND} {self.name}"


def _torch_url(name: str, metrics: tuple[str, ...], model: str, url: str, **kw) -> ModelFile:
    filename = url.rsplit("/", 1)[-1]
    digest = filename.rsplit("-", 1)[-1].split(".")[0] if "-" in filename else None
    return ModelFile(name, metrics, model, "url", filename, url=url, sha256=digest, **kw)


CATALOG: tuple[ModelFile, ...] = (
    ModelFile(
        "clip-vit-l-14", ("clip_text", "clip_text_edit", "clip_dir", "clip_frame_consistency",
                          "vbench_aq", "laion_aes"),
        "CLIP ViT-L/14 (OpenAI) via open_clip", "hf", "open_clip_model.safetensors",
        repo="timm/vit_large_patch14_clip_224.openai",
    ),
    ModelFile(
        "clip-vit-b-32", ("vbench_bc",), "CLIP ViT-B/32 (OpenAI) via open_clip", "hf",
        "open_clip_model.safetensors", repo="timm/vit_base_patch32_clip_224.openai",
    ),
    ModelFile(
        "dino-vitb16", ("vbench_sc",), "DINO ViT-B/16 (torch hub facebookresearch/dino)", "url",
        "dino_vitbase16_pretrain.pth",
        url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        hub_repo="facebookresearch/dino:main",
    ),
    # VBench vbench/utils.py (motion_smoothness): huggingface.co/lalala125/AMT/resolve/main/amt-s.pth
    ModelFile(
        "amt-s", ("vbench_ms",), "AMT-S frame interpolation (VBench motion_smoothness)", "hf",
        "amt-s.pth", repo="lalala125/AMT",
    ),
    ModelFile(
        "laion-aesthetic-linear", ("vbench_aq",),
        "LAION aesthetic linear head on CLIP ViT-L/14 (VBench aesthetic_quality)", "url",
        "sa_0_4_vit_l_14_linear.pth",
        # VBench vbench/aesthetic_quality.py `get_aesthetic_model` url_model; digest of the file
        # at LAION-AI/aesthetic-predictor main (4071 bytes; keys weight (1, 768), bias (1,))
        url="https://raw.githubusercontent.com/LAION-AI/aesthetic-predictor/main/"
        "sa_0_4_vit_l_14_linear.pth",
        sha256="2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
    ),
    _torch_url(
        "musiq-spaq", ("vbench_iq",), "MUSIQ trained on SPAQ (pyiqa; VBench imaging_quality)",
        "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
        "musiq_spaq_ckpt-358bb6af.pth",
        subdir="pyiqa",
    ),
    # tgxs002/HPSv2 hpsv2/utils.py `hps_version_map["v2.1"]`, img_score.py `hf_hub_download`
    ModelFile(
        "hps-v2.1", ("hpsv2",), "HPS v2.1 (open_clip ViT-H-14 fine-tuned)", "hf",
        "HPS_v2.1_compressed.pt", repo="xswu/HPSv2",
    ),
    ModelFile(
        "laion-improved-aesthetic", ("laion_aes",),
        "LAION improved aesthetic predictor MLP on CLIP ViT-L/14", "url",
        "sac+logos+ava1-l14-linearMSE.pth",
        # the file at the repo root on main (3714759 bytes; keys layers.0/2/4/6/7.*), the URL
        # as THUDM/ImageReward ImageReward/utils.py `_SCORES["Aesthetic"]` spells it
        url="https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
        "sac%2Blogos%2Bava1-l14-linearMSE.pth",
        sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
    ),
    # THUDM/ImageReward ImageReward/utils.py `_MODELS`, `ImageReward_download` (both files)
    ModelFile(
        "image-reward", ("image_reward",), "ImageReward v1.0 (BLIP + MLP)", "hf", "ImageReward.pt",
        repo="THUDM/ImageReward",
    ),
    ModelFile(
        "image-reward-config", ("image_reward",), "ImageReward v1.0 BLIP config", "hf",
        "med_config.json", repo="THUDM/ImageReward",
    ),
    _torch_url(
        "lpips-squeeze", ("bg_lpips", "fg_lpips_gt"), "SqueezeNet 1.1 (LPIPS backbone)",
        "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
    ),
    _torch_url(
        "lpips-alex", ("bg_lpips", "fg_lpips_gt"), "AlexNet (LPIPS backbone, lpips_net=alex)",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    _torch_url(
        "lpips-vgg", ("bg_lpips", "fg_lpips_gt"), "VGG16 (LPIPS backbone, lpips_net=vgg)",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
    _torch_url(
        "raft-large", ("warp_error",), "RAFT large (torchvision; flow=raft)",
        "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    ),
)


def entries(names: list[str]) -> list[ModelFile]:
    """Catalog entries for file names or metric names (a metric gives all the files it needs)."""
    items: list[ModelFile] = []
    for name in names:
        matches = [i for i in CATALOG if name in i.metrics] or [entry(name)]
        items += [i for i in matches if i not in items]
    return items


def entry(name: str) -> ModelFile:
    """The catalog entry `name`; ValueError listing the names otherwise."""
    for item in CATALOG:
        if item.name == name:
            return item
    raise ValueError(f"Unknown weights '{name}'. Available: {', '.join(i.name for i in CATALOG)}")
