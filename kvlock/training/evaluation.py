"""Evaluation of the toy model: sampling, oracle scores on held-out scenes, how much it uses its
prompt (`prompt_gap`) and how well it denoises each frame (`frame_error`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from kvlock.data.synthetic import scene_prompt
from kvlock.engine.timesteps import flow_timesteps
from kvlock.training.data import make_batch, swap_shape


@torch.no_grad()
def generate(backbone, prompts: list[str], shape: tuple[int, int, int], steps: int, shift: float,
             cfg_scale: float, seed: int) -> np.ndarray:
    """Euler sampling t: 1 -> 0 with CFG against the backbone's negative prompt.

    shape = (T, H, W) in pixels -> frames (B, T, H, W, 3) uint8.
    """
    c, f, h, w = backbone.geometry.latent_shape(*shape)[-4:]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(prompts), c, f, h, w, generator=gen).to(backbone.device)
    cond = backbone.encode_prompt(prompts)
    uncond = backbone.encode_prompt([backbone.negative_prompt] * len(prompts))
    context = torch.cat([cond, uncond])
    times = flow_timesteps(steps, shift)
    for t, t_next in zip(times[:-1], times[1:]):
        v_c, v_u = backbone.velocity(torch.cat([x, x]), t.expand(2 * len(prompts)), context).chunk(2)
        x = x + (t_next - t) * (v_u + cfg_scale * (v_c - v_u))
    return decode_clips(backbone, x)


def decode_clips(backbone, latents: torch.Tensor) -> np.ndarray:
    """latents (B, C, F, h, w) -> frames (B, T, H, W, 3) uint8 (the backbone decodes one clip at a time)."""
    return np.stack([backbone.decode_latents(z[None].cpu()) for z in latents])


def save_grid(videos: np.ndarray, path: Path) -> None:
    """videos (B, T, H, W, 3) uint8 -> one PNG, a row per video, a column per frame."""
    from PIL import Image

    b, t, h, w, _ = videos.shape
    grid = videos.transpose(0, 2, 1, 3, 4).reshape(b * h, t * w, 3)
    Image.fromarray(grid).resize((t * w * 4, b * h * 4), Image.NEAREST).save(path)


def evaluate(backbone, cfg, out_dir: Path | None = None, num_prompts: int | None = None) -> dict:
    """Generate from held-out scenes (Generator([eval_seed, i]), i < num_prompts, default
    `eval.num_prompts`) and score them with the oracle."""
    from kvlock.oracle import score_generations

    d, e, s = cfg.data, cfg.eval, cfg.sample
    shape = (d.num_frames, d.height, d.width)
    num_prompts = num_prompts or e.num_prompts
    videos, scenes = [], []
    for start in range(0, num_prompts, e.batch_size):
        idx = range(start, min(start + e.batch_size, num_prompts))
        _, prompts, batch_scenes, _ = make_batch(backbone.codec, d, d.eval_seed, idx)
        videos.append(generate(backbone, prompts, shape, s.steps, s.shift, s.cfg_scale, cfg.seed + start))
        scenes += batch_scenes
    videos = np.concatenate(videos)
    result = score_generations(videos, [sc.objects[0] for sc in scenes])
    if out_dir is not None:
        save_grid(videos[:8], out_dir / "eval_samples.png")
    return result


def write_samples(backbone, cfg, path: Path) -> None:
    """Sample grid of 4 held-out prompts (and their prompts beside it as .txt)."""
    _, prompts, _, _ = make_batch(backbone.codec, cfg.data, cfg.data.eval_seed, range(4))
    shape = (cfg.data.num_frames, cfg.data.height, cfg.data.width)
    save_grid(generate(backbone, prompts, shape, cfg.sample.steps, cfg.sample.shift,
                       cfg.sample.cfg_scale, cfg.seed), path)
    path.with_suffix(".txt").write_text("\n".join(prompts) + "\n")


def altered_prompts(scenes: list) -> dict[str, list[str]]:
    """Wrong prompts for `prompt_gap`: another clip's ("rotated"), the object's colour swapped with
    the first background colour ("colour_roles"), the object's shape replaced by the next one."""
    prompts = [scene_prompt(s) for s in scenes]
    roles = []
    for s in scenes:
        obj, bg = s.objects[0], s.background
        roles.append(scene_prompt(replace(s, objects=(replace(obj, color=bg.colors[0]),),
                                          background=replace(bg, colors=(obj.color, bg.colors[1])))))
    return {"rotated": prompts[1:] + prompts[:1], "colour_roles": roles,
            "shape": [scene_prompt(swap_shape(s, 0)) for s in scenes]}


@torch.no_grad()
def prompt_gap(backbone, cfg, t: float = 0.9, seed: int = 0) -> dict:
    """How much, and how, the model uses its prompt: x̂0 MSE at time t on the held-out clips with
    their own prompts and with each of `altered_prompts` -> {"t", "own", "rotated", "colour_roles",
    "shape"}. A model reading a bag of words has "colour_roles" == "own"."""
    d = cfg.data
    z0, prompts, scenes, _ = make_batch(backbone.codec, d, d.eval_seed, range(cfg.eval.num_prompts))
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    result = {"t": t}
    for name, texts in {"own": prompts, **altered_prompts(scenes)}.items():
        x_hat = clean_prediction(backbone, z0, noise, t, backbone.encode_prompt(texts))
        result[name] = float(((x_hat - z0) ** 2).mean())
    return result


def clean_prediction(backbone, z0: torch.Tensor, noise: torch.Tensor, t: float,
                     context: torch.Tensor) -> torch.Tensor:
    """x̂0 = x_t − t·v of clean latents z0 (B, C, F, h, w) noised to time t with `noise` (the
    engine's x_t = (1 − t)·z0 + t·ε) -> (B, C, F, h, w) on the CPU."""
    x_t = ((1 - t) * z0 + t * noise).to(backbone.device)
    times = torch.full((len(z0),), t, device=backbone.device)
    return (x_t - t * backbone.velocity(x_t, times, context)).cpu()


@torch.no_grad()
def frame_error(backbone, cfg, times: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7), seed: int = 0) -> dict:
    """How well the model denoises each frame: pixel MSE (values in [0, 1]) of x̂0 from the held-out
    clips noised to each t, per frame -> {t: [T values]}. Frames that share a latent frame (the
    codec's temporal packing) show up as a block of equal-ish errors."""
    d = cfg.data
    z0, prompts, _, _ = make_batch(backbone.codec, d, d.eval_seed, range(cfg.eval.num_prompts))
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    context = backbone.encode_prompt(prompts)
    truth = decode_clips(backbone, z0).astype(np.float64) / 255
    result = {}
    for t in times:
        x_hat = clean_prediction(backbone, z0, noise, t, context)
        frames = decode_clips(backbone, x_hat).astype(np.float64) / 255
        result[str(t)] = [round(float(e), 5) for e in ((frames - truth) ** 2).mean(axis=(0, 2, 3, 4))]
    return result
