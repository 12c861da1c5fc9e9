"""Where the fg-only hard-lock edit loop spends its time (the 25 % row of `benchmarks.perf`).

    python -m benchmarks.profile_fg_only [--quick] [--area 0.25]

Prints two things, on this process's torch threads:
1. scaled-dot-product attention alone at the self-attention's shape, all queries against the
   fg queries (keys are all tokens either way): the ceiling of the fg-only speed-up;
2. a torch.profiler breakdown of one fg-only edit (inversion served from an in-memory cache),
   operators grouped by input shape, with each one's milliseconds per edit and share.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.profiler import profile

from benchmarks.perf import FULL, QUICK, REPO, MemoryCache, make_sample
from kvlock.backbones import build_backbone
from kvlock.engine.editor import run_edit
from kvlock.engine.token_mask import token_mask
from kvlock.methods import compose_method


def sdpa_ms(batch: int, heads: int, head_dim: int, queries: int, keys: int, repeats: int = 10) -> float:
    """Milliseconds of one `scaled_dot_product_attention` call, (B, heads, n, d) random inputs."""
    q = torch.randn(batch, heads, queries, head_dim)
    k, v = torch.randn(batch, heads, keys, head_dim), torch.randn(batch, heads, keys, head_dim)
    for _ in range(3):
        F.scaled_dot_product_attention(q, k, v)
    start = time.perf_counter()
    for _ in range(repeats):
        F.scaled_dot_product_attention(q, k, v)
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny clip (smoke run)")
    parser.add_argument("--area", type=float, default=0.25, help="mask area (fraction of each frame)")
    parser.add_argument("--rows", type=int, default=15, help="operator rows to print")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    backbone = build_backbone(OmegaConf.load(REPO / "conf" / "model" / "wan_tiny.yaml"))
    sample = make_sample(sizes, args.area)
    fg = token_mask(sample.mask, backbone.geometry)
    cfg = compose_method("hard_lock", ["method.fg_only=true"], steps=sizes.steps)
    cache = MemoryCache()

    def edit():
        return run_edit(backbone, sample, cfg, seed=0, source_cache=cache)

    edit()  # runs the inversion into the cache
    batch = edit().nfe // (sizes.steps - cfg.skip_steps)  # rows per forward (CFG: 2); warms up
    tcfg = backbone.transformer.config
    n_all, n_fg = fg.numel(), int(fg.sum())
    full = sdpa_ms(batch, tcfg.num_attention_heads, tcfg.attention_head_dim, n_all, n_all)
    subset = sdpa_ms(batch, tcfg.num_attention_heads, tcfg.attention_head_dim, n_fg, n_all)
    print(f"{torch.get_num_threads()} threads; SDPA (batch {batch}, {tcfg.num_attention_heads} heads × "
          f"{tcfg.attention_head_dim}, {n_all} keys): {n_all} queries {full:.1f} ms, {n_fg} fg queries "
          f"{subset:.1f} ms: {full / subset:.2f}×")

    with profile(record_shapes=True) as prof:
        start = time.perf_counter()
        edit()
        wall = time.perf_counter() - start
    rows = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"fg-only edit ({sizes.frames}x{sizes.height}x{sizes.width}, {sizes.steps} steps, area {args.area}): "
          f"{wall * 1e3:.0f} ms wall under the profiler, {total / 1e3:.0f} ms operator self time")
    print("| operator | calls | ms per edit | share | input shapes |")
    print("|---|---|---|---|---|")
    for e in rows[:args.rows]:
        print(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1e3:.2f} | {e.self_cpu_time_total / total:.1%} | "
              f"{str(e.input_shapes)[:80]} |")
    attention = sum(e.self_cpu_time_total for e in rows if "scaled_dot_product" in e.key)
    print(f"attention share of the operator time: {attention / total:.1%}")
    return {"sdpa_full_ms": full, "sdpa_fg_ms": subset, "attention_share": attention / total}


if __name__ == "__main__":
    main()
