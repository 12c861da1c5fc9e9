"""open_clip models for the CLIP metrics: weights from the local caches, fetched on first use
unless offline (catalog files through `kvlock.weights`, other tags through open_clip)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from kvlock.metrics.base import Metric, MetricSettings
from kvlock.metrics.weights import LoadedModel, load_or_random
from kvlock.weights import CATALOG, FETCH_COMMAND, ModelFile, downloads_allowed, ensure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipModel:
    """A CLIP model with its inference preprocessing and tokenizer; features are L2-normalised."""

    loaded: LoadedModel
    preprocess: object  # PIL image -> (3, S, S) tensor (open_clip's inference transform)
    tokenizer: object
    device: torch.device
    batch_size: int

    @property
    def description(self) -> str:
        return self.loaded.description

    @property
    def image_size(self) -> int:
        size = self.loaded.module.visual.image_size
        return int(size[0] if isinstance(size, tuple | list) else size)

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, D) float32 on CPU, via open_clip's own preprocessing."""
        return self.encode_pixels(
            torch.stack([self.preprocess(Image.fromarray(f)) for f in frames])
        )

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) preprocessed images -> (N, D), in batches of `batch_size`."""
        model = self.loaded.module
        out = [model.encode_image(b.to(self.device)).float() for b in pixels.split(self.batch_size)]
        return F.normalize(torch.cat(out), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """N prompts -> (N, D) float32 on CPU."""
        features = self.loaded.module.encode_text(self.tokenizer(texts).to(self.device)).float()
        return F.normalize(features, dim=-1).cpu()


def check_clip_model(name: str) -> None:
    """Fail at build time on an open_clip model name that does not exist."""
    if name not in open_clip.list_models():
        raise ValueError(
            f"Unknown open_clip model '{name}'. Available: {', '.join(open_clip.list_models())}"
        )


class NamedClipMetric(Metric):
    """A metric on its own open_clip model: per-metric options `model` (default `default_model`)
    and `pretrained` (default "openai"); the model name is the column's variant."""

    default_model: str

    def __init__(self, settings: MetricSettings, model: str | None = None,
                 pretrained: str | None = "openai"):
        super().__init__(settings)
        self.model, self.pretrained = model or self.default_model, pretrained
        check_clip_model(self.model)

    @property
    def variant(self) -> str:
        return self.model


def clip_for(
    settings: MetricSettings, name: str | None = None, pretrained: str | None = None
) -> ClipModel:
    """The (process-wide, memoised) CLIP model of `settings` (`clip_model`/`clip_pretrained`
    unless `name`/`pretrained` are given). Raises WeightsUnavailable (see weights.py)."""
    return load_clip(
        name or settings.clip_model,
        pretrained if name else settings.clip_pretrained,
        batch_size=settings.batch_size,
        **settings.loader_kwargs,
    )


@functools.lru_cache(maxsize=3)
def load_clip(
    name: str,
    pretrained: str | None,
    *,
    allow_random: bool,
    seed: int,
    weights_dir: str | None,
    device: torch.device,
    batch_size: int,
    offline: bool,
) -> ClipModel:
    """open_clip `name` with weights `pretrained` (a tag such as "openai", or a file path).

    A tag loads the file its open_clip pretrained config names from the HF cache or open_clip's
    URL cache, downloaded first unless `offline`; its preprocessing (mean/std/interpolation) and
    QuickGELU flag apply.
    """
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) if pretrained else {}
    catalog_file = _catalog_file(tag_cfg)
    checkpoint = _local_checkpoint(name, pretrained, weights_dir)
    if checkpoint is None and pretrained and not os.path.isfile(pretrained):
        checkpoint = _download(tag_cfg, catalog_file, weights_dir, offline)
    loaded = load_or_random(
        f"open_clip {name}/{pretrained}" if pretrained else f"open_clip {name}",
        checkpoint,
        functools.partial(_build_clip, name, tag_cfg),
        allow_random=allow_random,
        seed=seed,
        device=device,
        fetch_command=catalog_file.fetch_command if catalog_file else None,
    )
    preprocess = image_transform_v2(
        PreprocessCfg(**loaded.module.visual.preprocess_cfg), is_train=False
    )
    return ClipModel(loaded, preprocess, open_clip.get_tokenizer(name), device, batch_size)


def _build_clip(name: str, tag_cfg: dict, checkpoint: Path | None) -> torch.nn.Module:
    """open_clip `name` from `checkpoint` (random init when None). An OpenAI release file
    (`~/.cache/clip/ViT-B-32.pt`, a TorchScript archive that `torch.load(weights_only=True)`
    refuses) goes through open_clip's own OpenAI loader (`open_clip.load_openai_model`, which
    rebuilds the model from the archive's state dict) with OpenAI's preprocessing."""
    if checkpoint is not None and is_torchscript(checkpoint):
        model = open_clip.load_openai_model(str(checkpoint), precision="fp32", device="cpu")
        size = model.visual.image_size
        model.visual.preprocess_cfg = dataclasses.asdict(
            PreprocessCfg(size=int(size[0] if isinstance(size, tuple | list) else size))
        )
        return model
    return open_clip.create_model(
        name,
        pretrained=str(checkpoint) if checkpoint else None,  # a file: open_clip loads it
        force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        force_preprocess_cfg=merge_preprocess_dict({}, tag_cfg),
    )


def is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip with `code/` and `constants.pkl`, as OpenAI's CLIP
    releases); False for `torch.save` checkpoints, safetensors and other files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") for n in archive.namelist())


def _catalog_file(tag_cfg: dict) -> ModelFile | None:
    """The `kvlock.weights` catalog entry holding this open_clip tag's HF file, if any."""
    repo_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    return next((i for i in CATALOG if i.repo == repo_id and i.filename in names), None)


def _download(
    tag_cfg: dict, catalog_file: ModelFile | None, weights_dir: str | None, offline: bool
) -> Path | None:
    """Fetch the tag's weights: a catalog file through `kvlock.weights` (verified), another tag
    through open_clip's own downloader. None when offline or the download failed (logged)."""
    if catalog_file is not None:
        return ensure(catalog_file, weights_dir, offline)
    if not tag_cfg or not downloads_allowed(offline):
        return None
    try:
        return Path(open_clip.download_pretrained(tag_cfg, cache_dir=weights_dir))
    except Exception as err:  # no network, server error: the metric reports n/c
        log.warning("open_clip download failed (%s); `%s` fetches the catalog's CLIP files",
                    err, FETCH_COMMAND)
        return None


def _local_checkpoint(name: str, pretrained: str | None, weights_dir: str | None) -> Path | None:
    """The weights file for (name, pretrained) if it is on disk, without any network access."""
    if not pretrained:
        return None
    if os.path.isfile(pretrained):
        return Path(pretrained)
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if cfg.get("hf_hub"):  # "org/repo/" (default file names) or "org/repo/file"
        repo_id, filename = os.path.split(cfg["hf_hub"])
        stem, ext = os.path.splitext(filename)
        if not filename:
            candidates = [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        else:
            candidates = (
                [f"{stem}.safetensors", filename] if ext in (".bin", ".pth") else [filename]
            )
        for candidate in candidates:
            path = try_to_load_from_cache(repo_id, candidate, cache_dir=weights_dir)
            if isinstance(path, str) and os.path.isfile(path):
                return Path(path)
    if cfg.get("url"):
        path = Path(weights_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(
            cfg["url"]
        )
        if path.is_file():
            return path
    return None
