"""The LPIPS model (lpips package): trained linear layers ship with the package, the torchvision
backbone weights come from the torch hub cache (`checkpoints/<torchvision file>`), fetched on
first use unless offline (catalog entries `lpips-<net>`)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import lpips
import torch
from torchvision import models

from kvlock.metrics.base import MetricInputs, MetricResult, MetricSettings, frame_mean
from kvlock.metrics.pixels import region_pair, undefined_where_empty
from kvlock.metrics.weights import (
    LoadedModel,
    fetch_hint,
    load_or_random,
    load_state_dict,
    model_file,
)

BACKBONE_WEIGHTS = {
    "alex": models.AlexNet_Weights.IMAGENET1K_V1,
    "squeeze": models.SqueezeNet1_1_Weights.IMAGENET1K_V1,
    "vgg": models.VGG16_Weights.IMAGENET1K_V1,
}


@functools.lru_cache(maxsize=4)
def load_lpips(
    net: str,
    *,
    allow_random: bool,
    seed: int,
    weights_dir: str | None,
    device: torch.device,
    offline: bool,
) -> LoadedModel:
    """lpips.LPIPS(net) v0.1 with its ImageNet backbone from the cache (fetched on first use
    unless offline), or a seeded random backbone."""
    return load_or_random(
        f"LPIPS {net}",
        model_file(f"lpips-{net}", weights_dir, offline),
        functools.partial(_build, net),
        allow_random=allow_random,
        seed=seed,
        device=device,
        fetch_command=fetch_hint(f"lpips-{net}"),
    )


def masked_lpips(
    inputs: MetricInputs, settings: MetricSettings, region: str, empty_reason: str
) -> MetricResult:
    """Per-frame LPIPS of edited*keep vs reference*keep (see `region_pair`), mean over frames."""
    model = load_lpips(settings.lpips_net, **settings.loader_kwargs)
    edited, reference, keep = region_pair(inputs, settings, region)
    distance = lpips_distance(model, edited * keep, reference * keep, settings.batch_size)
    return frame_mean(undefined_where_empty(distance, keep), empty_reason, **model.provenance)


@torch.no_grad()
def lpips_distance(
    model: LoadedModel, a: torch.Tensor, b: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> (N,) LPIPS distances (inputs mapped to [-1, 1])."""
    out = [
        model.module(x * 2 - 1, y * 2 - 1).flatten()
        for x, y in zip(a.split(batch_size), b.split(batch_size))
    ]
    return torch.cat(out)


def _build(net: str, checkpoint: Path | None) -> torch.nn.Module:
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if checkpoint is not None:
        _load_backbone(model, checkpoint)
    return model


def _load_backbone(model: torch.nn.Module, checkpoint: Path) -> None:
    """Copy torchvision `features.<i>.*` weights into lpips' slices (which keep the index names)."""
    owner = {
        index: name
        for name, part in model.net.named_children()
        for index, _ in part.named_children()
    }
    state = {}
    for key, value in load_state_dict(checkpoint).items():
        prefix, index, rest = key.split(".", 2) if key.count(".") >= 2 else (key, "", "")
        if prefix == "features" and index in owner:
            state[f"{owner[index]}.{index}.{rest}"] = value
    model.net.load_state_dict(state)
