"""Rectified-flow training of the toy Wan backbone on the synthetic world, plus its evaluation.

    python -m benchmarks.train_toy [--config conf/train/toy.yaml] [key=value ...]
    python -m benchmarks.train_toy resume=<out_dir>/checkpoint.pt [out_dir=...] [train.max_minutes=...]
    python -m benchmarks.train_toy --eval-only [model_weights=path] [key=value ...]

A plain argparse + OmegaConf entry (dotlist overrides) so it runs without a Hydra run dir.
Writes into `out_dir`: `train.log.jsonl` (loss per log step, quick held-out accuracy per
`eval_every`), `loss.png`, `samples_<step>.png`, `wan_toy.safetensors` (EMA weights, keys
`transformer.*` and `text_encoder.*`), `checkpoint.pt` (what `resume` needs) and `summary.json`
(steps, loss curve, final evaluation). `--eval-only` prints the oracle scores, `prompt_gap` and `frame_error`.
The code lives in `kvlock.training` (data, objective, model, loop, evaluation).
"""

from __future__ import annotations

import argparse
import json

import torch
from omegaconf import OmegaConf

from kvlock.backbones import build_backbone
from kvlock.backbones.wan import resolve_repo_path
from kvlock.training.evaluation import evaluate, frame_error, prompt_gap
from kvlock.training.loop import train
from kvlock.training.model import load_model_config


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
