"""The training loop: AdamW with warmup, EMA, periodic samples, quick evaluations and
checkpoints that `resume` continues bit-exactly."""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from kvlock.backbones import build_backbone
from kvlock.backbones.wan import load_weights, resolve_repo_path
from kvlock.training.data import draw_scenes, render_batch, shape_bands, shape_pairs
from kvlock.training.evaluation import evaluate, write_samples
from kvlock.training.model import ema_weights, identity_blocks, load_model_config, save_weights
from kvlock.training.objective import encode_prompts, flow_loss, sample_t


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
                write_samples(backbone, cfg, out_dir / f"samples_{step + 1:05d}.png")
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
    write_samples(backbone, cfg, out_dir / "samples_final.png")
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
