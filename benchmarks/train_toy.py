"""Rectified-flow training of the toy Wan backbone on the synthetic world, plus its evaluation.

    python -m benchmarks.train_toy [--config conf/train/toy.yaml] [key=value ...]
    python -m benchmarks.train_toy resume=<out_dir>/checkpoint.pt [out_dir=...] [train.max_minutes=...]
    python -m benchmarks.train_toy --eval-only [model_weights=path] [key=value ...]

A plain argparse + OmegaConf entry (dotlist overrides) so it runs without a Hydra run dir.
Writes into `out_dir`: `train.log.jsonl` (loss per log step, quick held-out accuracy per
`eval_every`), `loss.png`, `samples_<step>.png`, `wan_toy.safetensors` (EMA weights, keys
`transformer.*` and `text_encoder.*`), `checkpoint.pt` (what `resume` needs) and `summary.json`
(steps, loss curve, final evaluation). `--eval-only` prints the oracle scores, `prompt_gap` and `frame_error`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from kvlock.backbones import build_backbone
from kvlock.backbones.prediction import sample_to_velocity
from kvlock.backbones.wan import load_weights, resolve_repo_path
from kvlock.data.synthetic import SHAPES, object_mask, render_scene, sample_scene, scene_prompt
from kvlock.engine.timesteps import flow_timesteps


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


def encode_prompts(prompt_encoder, prompts: list[str]) -> torch.Tensor:
    """Differentiable twin of `PromptEncoder.forward`: -> (B, L, D), zeroed past each prompt."""
    ids, mask = prompt_encoder.tokenizer([p.strip() for p in prompts], prompt_encoder.max_length)
    device = prompt_encoder.encoder.device
    hidden = prompt_encoder.encoder(ids.to(device), mask.to(device)).last_hidden_state
    return hidden * mask.to(device)[..., None].to(hidden.dtype)


def sample_t(n: int, kind: str, gen: torch.Generator, mean: float = 0.0, std: float = 1.0,
             uniform_share: float = 0.0) -> torch.Tensor:
    """(n,) training times in (0, 1): logit-normal(mean, std) (mean > 0 favours noisy t) or uniform;
    with `uniform_share` > 0 each time is replaced by a uniform one with that probability (keeps the
    low-noise end, where edges and small shapes are drawn, in training)."""
    if kind == "logit_normal":
        t = torch.sigmoid(mean + std * torch.randn(n, generator=gen))
    elif kind == "uniform":
        t = torch.rand(n, generator=gen)
    else:
        raise ValueError(f"Unknown t_sampling '{kind}'. Available: logit_normal, uniform")
    if uniform_share > 0:
        uniform, pick = torch.rand(n, generator=gen), torch.rand(n, generator=gen) < uniform_share
        t = torch.where(pick, uniform, t)
    return t


def flow_loss(out: torch.Tensor, z0: torch.Tensor, eps: torch.Tensor, x_t: torch.Tensor,
              t: torch.Tensor, prediction: str, space: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted MSE of the transformer output `out` in velocity or sample space; all
    (B, C, F, h, w) (`weights` too; None: plain mean), t (B,).

    The velocity loss weighs an x̂0 error by 1/t² (the low-noise end dominates); the sample loss
    weighs every t alike, which puts the gradient where layout and colour are decided.
    For prediction "sample" the velocity loss is JiT's: both sides through `sample_to_velocity`.
    """
    if prediction == "sample":
        x_hat, v_hat, v = out, sample_to_velocity(out, x_t, t), sample_to_velocity(z0, x_t, t)
    else:
        x_hat, v_hat, v = x_t - t.view(-1, 1, 1, 1, 1) * out, out, eps - z0
    if space == "sample":
        error = (x_hat - z0) ** 2
    elif space == "velocity":
        error = (v_hat - v) ** 2
    else:
        raise ValueError(f"Unknown train.loss '{space}'. Available: velocity, sample")
    return error.mean() if weights is None else (weights * error).sum() / weights.sum()


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


def save_loss_curve(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], label="loss (mean over log window)")
    ax.set(xlabel="step", ylabel="MSE(v, ε − z0)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_weights(backbone, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"transformer.{k}": v for k, v in backbone.transformer.state_dict().items()}
    tensors |= {f"text_encoder.{k}": v for k, v in backbone.prompt_encoder.encoder.state_dict().items()}
    save_file({k: v.detach().float().cpu().clone() for k, v in tensors.items()}, str(path))


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


def identity_blocks(transformer, missing: list[str]) -> list[int]:
    """Zero the residual outputs of transformer blocks that `missing` names entirely (a deeper
    model warm-started from a shallower one), so the grown model starts out computing exactly what
    the loaded one did. -> the indices of those blocks."""
    grown = []
    for i, block in enumerate(transformer.blocks):
        if all(f"transformer.blocks.{i}.{name}" in missing for name, _ in block.named_parameters()):
            for layer in (block.attn1.to_out[0], block.attn2.to_out[0], block.ffn.net[2]):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
            grown.append(i)
    return grown


def load_model_config(cfg):
    """`model_config` with `model_overrides` merged over it (e.g. an earlier stage's architecture)."""
    return OmegaConf.merge(OmegaConf.load(resolve_repo_path(cfg.model_config)), cfg.get("model_overrides") or {})


def train(cfg) -> dict:
    """Train from seeded weights (or `init_weights`, or `resume` a checkpoint); returns the summary
    written to `summary.json`."""
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir or f"outputs/train_toy/{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out_dir / "config.yaml")

    model_cfg = load_model_config(cfg)
    model_cfg.weights, model_cfg.device = None, cfg.device
    backbone = build_backbone(model_cfg)
    if cfg.get("init_weights"):  # parameters the file lacks or shapes differently keep their init
        new = load_weights(resolve_repo_path(cfg.init_weights), allow_missing=True,
                           transformer=backbone.transformer, text_encoder=backbone.prompt_encoder.encoder)
        if new:
            grown = identity_blocks(backbone.transformer, new)
            print(f"init_weights: {', '.join(new)} not in {cfg.init_weights} (or shaped differently there);"
                  " initialised fresh"
                  + (f" (new blocks {grown} start as identity)" if grown else ""))
    tc, d = cfg.train, cfg.data
    transformer, text_encoder = backbone.transformer.train(), backbone.prompt_encoder.encoder
    params = list(transformer.parameters())
    if tc.train_text_encoder:
        params += list(text_encoder.train().parameters())
    else:
        text_encoder.requires_grad_(False)
    ema = {"transformer": copy.deepcopy(transformer).eval().requires_grad_(False),
           "text_encoder": copy.deepcopy(text_encoder).eval().requires_grad_(False)}
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / tc.warmup))
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_params = sum(p.numel() for p in transformer.parameters())
    n_text = sum(p.numel() for p in text_encoder.parameters())

    log, evals, window, first, minutes_before = [], [], [], 0, 0.0
    if cfg.get("resume"):  # the exact state of an earlier run: same data stream, noise and schedule
        state = torch.load(resolve_repo_path(cfg.resume), weights_only=True)
        for name, module in (("transformer", transformer), ("text_encoder", text_encoder)):
            module.load_state_dict(state[name])
            ema[name].load_state_dict(state[f"ema_{name}"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])  # the text encoder's dropout draws from it
        first, log, evals, minutes_before = state["step"], state["log"], state["evals"], state["minutes"]

    def checkpoint(done_steps: int) -> None:
        """Everything `resume` needs, to out_dir/checkpoint.pt (atomically)."""
        state = {"step": done_steps, "log": log, "evals": evals, "minutes": minutes_before + (time.time() - start) / 60,
                 "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                 "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        for name, module in (("transformer", transformer), ("text_encoder", text_encoder)):
            state[name], state[f"ema_{name}"] = module.state_dict(), ema[name].state_dict()
        torch.save(state, out_dir / "checkpoint.pt.tmp")
        (out_dir / "checkpoint.pt.tmp").replace(out_dir / "checkpoint.pt")

    paired = bool(tc.get("paired_shapes"))  # (configs saved by runs before the knob lack it)
    start, step = time.time(), first - 1  # step: the last one done
    bar = tqdm(range(first, tc.max_steps), desc="train_toy", initial=first, total=tc.max_steps)
    for step in bar:
        scenes = draw_scenes(d, d.train_seed, range(step * tc.batch_size, (step + 1) * tc.batch_size))
        if paired:
            scenes = shape_pairs(scenes, step)
        z0, prompts, scenes, masks = render_batch(backbone.codec, d, scenes)
        prompts = ["" if u < tc.p_uncond else p for u, p in zip(rng.random(len(prompts)), prompts)]
        z0 = z0.to(backbone.device)
        eps = torch.randn(z0.shape, generator=gen)
        t = sample_t(len(prompts), tc.t_sampling, gen, tc.t_mean, tc.t_std, tc.t_uniform_share)
        if paired:  # a pair shares noise and time: only the shape word tells its x̂0 apart
            half = len(prompts) // 2
            eps, t = torch.cat([eps[:half], eps[:half]]), torch.cat([t[:half], t[:half]])
        eps, t = eps.to(backbone.device), t.to(backbone.device)
        tb = t.view(-1, 1, 1, 1, 1)
        x_t = (1 - tb) * z0 + tb * eps
        context = encode_prompts(backbone.prompt_encoder, prompts)
        out = transformer(x_t, timestep=t * 1000.0, encoder_hidden_states=context, return_dict=False)[0]
        # object pixels count 1 + object_weight (× (1 − t) with fade: no extra pull where t is so
        # high that the object's place is still unknown, which would paint its colour everywhere
        # and blur which of the prompt's colours is the object's)
        fade = (1 - tb) if tc.object_weight_fade else 1.0
        weights = 1.0 + tc.object_weight * fade * masks.to(backbone.device)
        if tc.shape_weight:  # pixels inside and outside the object where its shape shows
            bands = shape_bands(backbone.codec, scenes, (d.num_frames, d.height, d.width))
            weights = weights + tc.shape_weight * fade * bands.to(backbone.device)
        loss = flow_loss(out.float(), z0, eps, x_t, t, backbone.prediction, tc.loss, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        sched.step()
        decay = min(tc.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, live in (("transformer", transformer), ("text_encoder", text_encoder)):
                for pe, pl in zip(ema[name].parameters(), live.parameters()):
                    pe.lerp_(pl, 1 - decay)
        window.append(loss.item())
        if (step + 1) % tc.log_every == 0:
            log.append({"step": step + 1, "loss": float(np.mean(window)),
                        "minutes": minutes_before + (time.time() - start) / 60})
            window = []
            bar.set_postfix(loss=f"{log[-1]['loss']:.4f}")
            append_log(out_dir, log[-1])
        if (step + 1) % tc.sample_every == 0:
            with ema_weights(backbone, ema):
                _write_samples(backbone, cfg, out_dir / f"samples_{step + 1:05d}.png")
        if (step + 1) % tc.eval_every == 0:  # checkpoint + a quick held-out accuracy
            with ema_weights(backbone, ema):
                save_weights(backbone, out_dir / "wan_toy.safetensors")
                quick = evaluate(backbone, cfg, num_prompts=cfg.eval.quick_prompts)
            row = {"step": step + 1, "color_acc": quick["color_acc"], "shape_acc": quick["shape_acc"],
                   "minutes": minutes_before + (time.time() - start) / 60}
            evals.append(row)
            append_log(out_dir, row)
            bar.write(json.dumps(row))
            checkpoint(step + 1)
        if (time.time() - start) / 60 > tc.max_minutes:
            break
    minutes = minutes_before + (time.time() - start) / 60
    checkpoint(step + 1)

    backbone.transformer, backbone.prompt_encoder.encoder = ema["transformer"], ema["text_encoder"]
    save_weights(backbone, out_dir / "wan_toy.safetensors")
    if cfg.export:
        shutil.copyfile(out_dir / "wan_toy.safetensors", resolve_repo_path(cfg.export))
    save_loss_curve(log, out_dir / "loss.png")
    _write_samples(backbone, cfg, out_dir / "samples_final.png")
    summary = {"steps": step + 1, "train_minutes": minutes, "transformer_params": n_params,
               "text_encoder_params": n_text, "final_loss": log[-1]["loss"] if log else math.nan,
               "loss_curve": log[:: max(1, len(log) // 12)] + log[-1:], "quick_evals": evals,
               "eval": evaluate(backbone, cfg, out_dir)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "loss_curve"}, indent=2))
    return summary


def append_log(out_dir: Path, row: dict) -> None:
    """One JSON line onto out_dir/train.log.jsonl (loss rows and quick-evaluation rows)."""
    with open(out_dir / "train.log.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


@contextmanager
def ema_weights(backbone, ema: dict | None):
    """Swap the EMA modules into the backbone for sampling (`ema` None: keep its own)."""
    live = (backbone.transformer, backbone.prompt_encoder.encoder)
    if ema is not None:
        backbone.transformer, backbone.prompt_encoder.encoder = ema["transformer"], ema["text_encoder"]
    try:
        yield backbone
    finally:
        backbone.transformer, backbone.prompt_encoder.encoder = live


def _write_samples(backbone, cfg, path: Path) -> None:
    """Sample grid of 4 held-out prompts (and their prompts beside it as .txt)."""
    _, prompts, _, _ = make_batch(backbone.codec, cfg.data, cfg.data.eval_seed, range(4))
    shape = (cfg.data.num_frames, cfg.data.height, cfg.data.width)
    save_grid(generate(backbone, prompts, shape, cfg.sample.steps, cfg.sample.shift,
                       cfg.sample.cfg_scale, cfg.seed), path)
    path.with_suffix(".txt").write_text("\n".join(prompts) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/train/toy.yaml")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate `model_weights` (default: the model config's weights)")
    parser.add_argument("overrides", nargs="*", help="key=value OmegaConf dotlist overrides")
    args = parser.parse_args(argv)
    cfg = OmegaConf.merge(OmegaConf.load(resolve_repo_path(args.config)),
                          OmegaConf.from_dotlist(args.overrides))
    if not args.eval_only:
        train(cfg)
        return
    torch.set_num_threads(int(cfg.threads))
    model_cfg = load_model_config(cfg)
    model_cfg.device = cfg.device
    if cfg.get("model_weights"):
        model_cfg.weights = cfg.model_weights
    backbone = build_backbone(model_cfg)
    print(json.dumps({**evaluate(backbone, cfg), "prompt_gap": prompt_gap(backbone, cfg),
                      "frame_error": frame_error(backbone, cfg)}, indent=2))


if __name__ == "__main__":
    main()
