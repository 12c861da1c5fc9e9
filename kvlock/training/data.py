"""Training data of the toy model: seeded synthetic scenes rendered to latents, prompts and
object masks in latent layout, plus the curriculum's scene edits (larger objects, shape pairs)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from kvlock.data.synthetic import SHAPES, object_mask, render_scene, sample_scene, scene_prompt


def make_batch(codec, data_cfg, seed: int, indices) -> tuple[torch.Tensor, list[str], list, torch.Tensor]:
    """`render_batch` of `draw_scenes`."""
    return render_batch(codec, data_cfg, draw_scenes(data_cfg, seed, indices))


def draw_scenes(data_cfg, seed: int, indices) -> list:
    """Scenes Generator([seed, i]) for i in `indices`, objects enlarged by `data.object_scale`."""
    scale = data_cfg.get("object_scale", 1.0)  # configs saved by runs before the knob lack it
    return [enlarge(sample_scene(np.random.default_rng([seed, int(i)]), max_objects=data_cfg.max_objects),
                    scale) for i in indices]


def render_batch(codec, data_cfg, scenes: list) -> tuple[torch.Tensor, list[str], list, torch.Tensor]:
    """scenes -> latents (B, C, F, h, w), prompts, the scenes, and object masks in latent layout
    (B, C, F, h, w) (1 where the latent element is an object pixel)."""
    shape = (data_cfg.num_frames, data_cfg.height, data_cfg.width)
    rendered = [render_scene(s, *shape) for s in scenes]
    latents = torch.cat([codec.encode(frames) for frames, _ in rendered])
    masks = torch.cat([mask_to_latent(codec, mask) for _, mask in rendered])
    return latents, [scene_prompt(s) for s in scenes], scenes, masks


def shape_pairs(scenes: list, offset: int) -> list:
    """The first half of `scenes` followed by the same scenes with another shape (`swap_shape` by
    offset + k for scene k): a batch of counterfactual pairs that differ only in the shape, its word
    and the pixels where it shows."""
    half = scenes[: len(scenes) // 2]
    return half + [swap_shape(scene, offset + k) for k, scene in enumerate(half)]


def swap_shape(scene, k: int):
    """The scene with its first object's shape replaced by the (k % 4 + 1)-th next one in SHAPES
    (never its own)."""
    obj = scene.objects[0]
    other = SHAPES[(SHAPES.index(obj.shape) + k % (len(SHAPES) - 1) + 1) % len(SHAPES)]
    return replace(scene, objects=(replace(obj, shape=other), *scene.objects[1:]))


def enlarge(scene, scale: float):
    """The scene with every object's radius times `scale` and its path squeezed toward the centre so
    it stays inside the frame (a point in [size, 1 − size] maps into [size', 1 − size']): a
    curriculum knob that makes the shapes span more tokens. scale 1 returns the scene unchanged."""
    if scale == 1.0:
        return scene
    objects = []
    for obj in scene.objects:
        size = obj.size * scale
        if not 0 < size < 0.5:
            raise ValueError(f"data.object_scale={scale} makes an object radius {size:.2f} of the frame;"
                             " it must stay in (0, 0.5)")
        squeeze = (1 - 2 * size) / (1 - 2 * obj.size)
        start, end = ((0.5 + (c - 0.5) * squeeze for c in point) for point in (obj.start, obj.end))
        objects.append(replace(obj, size=size, start=tuple(start), end=tuple(end)))
    return replace(scene, objects=tuple(objects))


def mask_to_latent(codec, mask: np.ndarray) -> torch.Tensor:
    """(T, H, W) bool pixel mask -> (1, C, F, h, w) in latent layout: 1 where the latent element
    holds a masked pixel, else 0 (the codec is a lossless rearrangement)."""
    return (codec.encode(np.repeat(mask[..., None], 3, axis=-1).astype(np.uint8) * 255) + 1) / 2


def shape_bands(codec, scenes: list, shape: tuple[int, int, int]) -> torch.Tensor:
    """Where the object's shape decides: pixels inside some but not all of the world's SHAPES drawn
    at the object's size and path, in latent layout (B, C, F, h, w), 1 there and 0 elsewhere."""
    bands = []
    for scene in scenes:
        masks = np.stack([object_mask(replace(scene.objects[0], shape=s), *shape) for s in SHAPES])
        bands.append(mask_to_latent(codec, masks.any(0) & ~masks.all(0)))
    return torch.cat(bands)
