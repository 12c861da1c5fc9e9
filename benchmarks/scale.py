"""Cost at real scale: the published Wan2.1-T2V-1.3B transformer architecture (seeded random
weights) edited on this machine, the memory pre-check's estimate against the measured peak, the
reduced-precision K/V stores, and sampler equality with diffusers' WanPipeline.

Run through `python -m benchmarks.perf --section scale [--quick] [--json FILE] [--results FILE]`.
The edits run in one fresh subprocess (MALLOC_ARENA_MAX=1, MALLOC_TRIM_THRESHOLD_=0 so RSS follows
live allocations); its peak RSS, sampled every 2 ms, is taken minus the RSS before the backbone was
built, so the model's own weights count, as they do in the estimate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "conf" / "model" / "wan2.1_t2v_1.3b_random.yaml"
SECTION_BEGIN, SECTION_END = "<!-- scale:begin -->", "<!-- scale:end -->"
PAPER = {"kvlock_s_per_it_a100": 7.39, "cfg_zero_star_s_per_it_a100": 5.58, "kvlock_vs_cfg_zero_star": 7.39 / 5.58,
         "extra_memory_gb": 10.0}
TARGETS = {"memory_estimate_ratio": (0.8, 1.25), "kvlock_vs_cfg_zero_star": 1.10, "pipeline_equivalence_max_abs": 1e-4}


@dataclass
class ScalePlan:
    """What the child process measures: model overrides, clip sizes (T, H, W), steps, repeats."""

    model_overrides: dict
    sizes: list[tuple[int, int, int]]
    steps: int
    repeats: int
    threads: int = 1
    kv_dtypes: list[str] = field(default_factory=lambda: ["float32", "bfloat16", "float8_e4m3fn"])
    timed_methods: list[str] = field(default_factory=lambda: ["cfg_zero_star", "kvlock"])
    fg_only_size: tuple[int, int, int] = (5, 256, 128)  # clip for the fg-only speed-up (256 tokens at 1.3B)


# CPU: float32 compute (CPUs without bf16 matrix units run bf16 GEMMs ~100x slower) and 64 text
# tokens instead of Wan's 512 (the cross-attention over padded text is a fixed per-step cost).
FULL = ScalePlan(model_overrides={"device": "cpu", "dtype": "float32", "text": {"max_length": 64}},
                 sizes=[(1, 64, 64), (5, 64, 64), (5, 128, 64)], steps=2, repeats=4)
QUICK = ScalePlan(
    model_overrides={"device": "cpu", "dtype": "float32",
                     "transformer": {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16,
                                     "ffn_dim": 64, "text_dim": 64, "freq_dim": 32},
                     "vae": {"base_dim": 4}, "text": {"max_length": 16, "d_model": 64, "d_kv": 8, "d_ff": 32}},
    sizes=[(5, 64, 64), (5, 128, 64), (5, 128, 128)], steps=2, repeats=1, fg_only_size=(5, 128, 128))


def make_sample(frames: int, height: int, width: int, area: float = 0.25, seed: int = 0):
    """Random-texture clip with a centred rectangular mask covering `area` of each frame."""
    from kvlock.data.sample import EditSample

    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    mask = np.zeros(video.shape[:3], bool)
    h, w = int(height * area**0.5), int(width * area**0.5)
    mask[:, (height - h) // 2:(height + h) // 2, (width - w) // 2:(width + w) // 2] = True
    return EditSample("scale", "scale", video, mask, "a red circle on a floor", "a blue square on a floor",
                      "color_change")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def timed_edit(backbone, sample, cfg, sampler_cls, source_cache=None) -> dict:
    """One edit; seconds per denoising step (median gap between step callbacks) in wall time and
    in this process's CPU time (which leaves out the time a shared machine kept it waiting for a
    core), peak RSS during it."""
    from kvlock.engine.editor import run_edit

    stamps, cpu_stamps = [], []

    def stamp(_):
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    sampler = sampler_cls()
    sampler.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    out = run_edit(backbone, sample, cfg, seed=0, source_cache=source_cache, callback=stamp)
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    peak = sampler.stop()
    gaps, cpu_gaps = np.diff(stamps).tolist(), np.diff(cpu_stamps).tolist()
    return {"s_per_it": statistics.median(gaps) if gaps else total / cfg.steps, "step_gaps": gaps,
            "cpu_s_per_it": statistics.median(cpu_gaps) if cpu_gaps else cpu_total / cfg.steps,
            "wall_s": total, "peak_rss": peak, "out": out}


def child(plan: ScalePlan) -> dict:
    """Build the backbone, run the edits, return the measurements (JSON-able)."""
    import torch
    from omegaconf import OmegaConf

    import kvlock.backbones.wan_random  # noqa: F401  (import the model libraries before the baseline)
    from benchmarks.perf import RSSSampler
    from kvlock.backbones import build_backbone
    from kvlock.engine.editor import run_edit  # noqa: F401
    from kvlock.engine.memory import estimate_edit, weight_bytes
    from kvlock.engine.token_mask import token_mask
    from kvlock.methods import compose_method

    torch.set_num_threads(plan.threads)
    configs = {m: compose_method(m, steps=plan.steps) for m in [*plan.timed_methods, "hard_lock"]}
    baseline = RSSSampler.rss()
    sampler = RSSSampler()
    sampler.start()
    start = time.perf_counter()
    cfg = OmegaConf.merge(OmegaConf.load(MODEL), plan.model_overrides)
    backbone = build_backbone(cfg)
    build_s = time.perf_counter() - start
    build_peak = sampler.stop() - baseline
    print(f"[scale] built in {build_s:.0f} s", file=sys.stderr, flush=True)
    result = {
        "params": sum(p.numel() for p in backbone.transformer.parameters()),
        "weight_bytes": weight_bytes(backbone), "build_s": build_s, "build_peak_rss": build_peak,
        "dtype": str(backbone.dtype).replace("torch.", ""), "threads": plan.threads,
        "text_tokens": int(cfg.text.max_length), "steps": plan.steps, "repeats": plan.repeats, "sizes": [],
    }
    for frames, height, width in plan.sizes:
        sample = make_sample(frames, height, width)
        fg = token_mask(sample.mask, backbone.geometry)
        row = {"size": f"{frames}x{height}x{width}", "tokens": int(fg.numel()),
               "fg_fraction": float(fg.float().mean()), "s_per_it": {}, "cpu_s_per_it": {}, "peak_rss": {},
               "estimate": {}}
        runs = {m: [] for m in configs}
        for _ in range(plan.repeats):  # interleaved: A B A B ...
            for method in plan.timed_methods:
                runs[method].append(timed_edit(backbone, sample, configs[method], RSSSampler))
                print(f"[scale] {frames}x{height}x{width} {method}: {runs[method][-1]['step_gaps']}",
                      file=sys.stderr, flush=True)
        runs["hard_lock"].append(timed_edit(backbone, sample, configs["hard_lock"], RSSSampler))
        for method, method_runs in runs.items():
            row["s_per_it"][method] = statistics.median(r["s_per_it"] for r in method_runs)
            row["cpu_s_per_it"][method] = statistics.median(r["cpu_s_per_it"] for r in method_runs)
            row["peak_rss"][method] = max(r["peak_rss"] for r in method_runs) - baseline
            est = estimate_edit(backbone, configs[method], frames, height, width, row["fg_fraction"])
            row["estimate"][method] = {**asdict(est), "total": est.total}
        per_pair = [b["s_per_it"] / a["s_per_it"] for a, b in zip(runs["cfg_zero_star"], runs["kvlock"])]
        row["kvlock_vs_cfg_zero_star_per_repeat"] = per_pair
        row["kvlock_vs_cfg_zero_star_cpu_per_repeat"] = [
            b["cpu_s_per_it"] / a["cpu_s_per_it"] for a, b in zip(runs["cfg_zero_star"], runs["kvlock"])]
        hard = runs["hard_lock"][0]["out"]
        row["kv_store_bytes"] = hard.stats["kv_store_bytes"]
        row["kv_store_formula"] = row["estimate"]["hard_lock"]["kv_store"]
        result["sizes"].append(row)
        print(f"[scale] {row['size']} ({row['tokens']} tokens): s/it {row['s_per_it']}", file=sys.stderr,
              flush=True)
    result["kv_dtypes"] = kv_dtype_costs(backbone, plan, compose_method)
    result["fg_only"] = fg_only_speedup(backbone, plan, compose_method)
    return result


def fg_only_speedup(backbone, plan: ScalePlan, compose_method) -> dict:
    """Full-token vs fg-only hard lock at `plan.fg_only_size`, the inversion served from an
    in-memory cache (the edit loop only, as `benchmarks.perf` times it on the tiny backbone),
    interleaved per repeat: s/it of each and the per-repeat ratio."""
    from benchmarks.perf import MemoryCache, RSSSampler, interleaved_runs
    from kvlock.engine.token_mask import token_mask

    frames, height, width = plan.fg_only_size
    sample = make_sample(frames, height, width)

    def edit(fg_only: bool):
        cfg = compose_method("hard_lock", [f"method.fg_only={str(fg_only).lower()}"], steps=plan.steps)
        cache = MemoryCache()  # filled by the warm-up call (the inversion)
        return lambda: timed_edit(backbone, sample, cfg, RSSSampler, cache)["s_per_it"]

    runs = interleaved_runs({False: edit(False), True: edit(True)}, plan.repeats)
    ratios = [full / fg for full, fg in zip(runs[False], runs[True])]
    fg_tokens = token_mask(sample.mask, backbone.geometry)
    out = {"size": f"{frames}x{height}x{width}", "tokens": int(fg_tokens.numel()),
           "fg_fraction": float(fg_tokens.float().mean()),
           "s_per_it": {"full": statistics.median(runs[False]), "fg_only": statistics.median(runs[True])},
           "speedup": statistics.median(ratios), "speedup_per_repeat": ratios}
    print(f"[scale] fg-only at {out['size']}: {out}", file=sys.stderr, flush=True)
    return out


def kv_dtype_costs(backbone, plan: ScalePlan, compose_method) -> dict:
    """hard_lock with each K/V storage dtype at the first size: store bytes, and how far the edit
    moves from the float32-store edit (background PSNR vs the source, foreground PSNR vs float32)."""
    from kvlock.engine.editor import run_edit

    frames, height, width = plan.sizes[0]
    sample = make_sample(frames, height, width)
    outs = {d: run_edit(backbone, sample, compose_method("hard_lock", [f"method.kv_dtype={d}"], steps=plan.steps),
                        seed=0) for d in plan.kv_dtypes}
    ref = outs["float32"]
    fg, bg = sample.mask, ~sample.mask
    return {d: {"bytes": o.stats["kv_store_bytes"], "ratio": o.stats["kv_store_bytes"] / ref.stats["kv_store_bytes"],
                "bg_psnr_vs_source": psnr(o.frames[bg], sample.frames[bg]),
                "fg_psnr_vs_float32_store": psnr(o.frames[fg], ref.frames[fg])} for d, o in outs.items()}


HELDOUT = REPO.parent / "shared" / "eval" / "videos"
HELDOUT_CLIPS = ("car-roundabout", "dance-twirl", "dogs-jump")


def heldout_kv_dtype_costs(quick: bool, steps: int = 6) -> dict:
    """hard_lock with each K/V storage dtype on the held-out clips (17 frames, halved to 120x212;
    2 frames at 32x32 in quick mode) on the embedded tiny backbone, whose lossless codec makes
    pixel differences exact: background PSNR against the source and foreground PSNR / mean
    absolute change against the float32-store edit. -> {clip: {dtype: {...}}}; {} without the clips."""
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone
    from kvlock.data.sample import EditSample
    from kvlock.data.video_io import read_frames, read_masks
    from kvlock.engine.editor import run_edit
    from kvlock.methods import compose_method

    if not HELDOUT.is_dir():
        return {}
    backbone = build_backbone(OmegaConf.load(REPO / "conf" / "model" / "wan_tiny.yaml"))
    frames_n, step, (h, w) = (5, 4, (32, 32)) if quick else (17, 2, (120, 212))
    out = {}
    for clip in HELDOUT_CLIPS[:1] if quick else HELDOUT_CLIPS:
        video = read_frames(HELDOUT / clip / "frames")[:frames_n, ::step, ::step][:, :h, :w]
        mask = read_masks(HELDOUT / clip / "masks")[:frames_n, ::step, ::step][:, :h, :w] > 127
        sample = EditSample(clip, clip, video, mask, "a video", "an edited video", "held-out")
        edits = {d: run_edit(backbone, sample, compose_method("hard_lock", [f"method.kv_dtype={d}"], steps=steps),
                             seed=0) for d in ("float32", "bfloat16", "float8_e4m3fn")}
        ref = edits["float32"].frames
        out[clip] = {d: {"bytes": e.stats["kv_store_bytes"],
                         "bg_psnr_vs_source": psnr(e.frames[~mask], video[~mask]),
                         "fg_psnr_vs_float32_store": psnr(e.frames[mask], ref[mask]),
                         "fg_mean_abs_change_vs_float32_store": float(np.abs(
                             e.frames[mask].astype(np.int16) - ref[mask].astype(np.int16)).mean())}
                     for d, e in edits.items()}
        print(f"[scale] held-out {clip}: {json.dumps(out[clip])}", file=sys.stderr, flush=True)
    return out


def run_child(plan: ScalePlan) -> dict:
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": str(plan.threads)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(asdict(plan))],
                          cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)  # progress on stderr
    if proc.returncode != 0:
        raise RuntimeError(f"scale child failed (exit {proc.returncode}); its log is above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(raw: dict, equivalence: dict, heldout: dict) -> dict:
    """The `scale` object of the perf JSON."""
    largest = raw["sizes"][-1]
    ratios = {}
    for row in raw["sizes"]:
        for method, peak in row["peak_rss"].items():
            ratios[f"{row['size']}/{method}"] = row["estimate"][method]["total"] / peak
    return {
        "model": "Wan2.1-T2V-1.3B architecture, seeded random weights",
        "params": raw["params"],
        "dtype": raw["dtype"], "threads": raw["threads"], "text_tokens": raw["text_tokens"],
        "memory_estimate_ratio": ratios[f"{largest['size']}/hard_lock"],
        "memory_estimate_ratios": ratios,
        "pipeline_equivalence_max_abs": equivalence["max_abs"],
        "pipeline_equivalence": equivalence,
        "kv_store_bytes_ratio": {d: v["ratio"] for d, v in raw["kv_dtypes"].items() if d != "float32"},
        "kv_dtypes": raw["kv_dtypes"],
        "kv_dtypes_heldout": heldout,
        "kv_store_bytes_vs_formula": largest["kv_store_bytes"] / largest["kv_store_formula"],
        "kvlock_vs_cfg_zero_star": largest["s_per_it"]["kvlock"] / largest["s_per_it"]["cfg_zero_star"],
        "kvlock_vs_cfg_zero_star_cpu": largest["cpu_s_per_it"]["kvlock"] / largest["cpu_s_per_it"]["cfg_zero_star"],
        "fg_only_speedup": raw["fg_only"]["speedup"],
        "fg_only": raw["fg_only"],
        "timings": {row["size"]: {"tokens": row["tokens"], "s_per_it": row["s_per_it"],
                                  "peak_rss_gb": {m: v / 1024**3 for m, v in row["peak_rss"].items()},
                                  "kvlock_vs_cfg_zero_star_per_repeat": row["kvlock_vs_cfg_zero_star_per_repeat"]}
                    for row in raw["sizes"]},
        "build_s": raw["build_s"], "build_peak_rss_gb": raw["build_peak_rss"] / 1024**3,
        "weight_bytes": raw["weight_bytes"],
        "raw": raw,
        "paper": PAPER,
    }


def growth_exponent(tokens: list[int], values: list[float]) -> float:
    """Slope of log(value) against log(tokens): how cost grows with the token count."""
    return float(np.polyfit(np.log(tokens), np.log(values), 1)[0])


def plot(scale: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(scale["timings"].values())
    tokens = [r["tokens"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for method in rows[0]["s_per_it"]:
        ax1.plot(tokens, [r["s_per_it"][method] for r in rows], "o-", label=method)
        ax2.plot(tokens, [r["peak_rss_gb"][method] for r in rows], "o-", label=method)
    ax1.set(xlabel="video tokens", ylabel="s / it", title="time per denoising step")
    ax2.set(xlabel="video tokens", ylabel="GiB", title="peak RSS (weights included)")
    ax1.legend()
    fig.suptitle(f"Wan2.1-1.3B architecture on CPU ({scale['dtype']}, {scale['threads']} thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(scale: dict, plot_name: str, machine: str) -> str:
    rows = list(scale["timings"].items())
    tokens = [r["tokens"] for _, r in rows]
    lo, hi = TARGETS["memory_estimate_ratio"]
    eq = scale["pipeline_equivalence"]
    growth = {m: growth_exponent(tokens, [r["s_per_it"][m] for _, r in rows]) for m in rows[0][1]["s_per_it"]}
    kv, fg = scale["kv_dtypes"], scale["fg_only"]
    lines = [
        SECTION_BEGIN,
        "## Wan2.1-1.3B architecture on CPU",
        "",
        f"Measured by `python -m benchmarks.perf --section scale` on {machine}: the published Wan2.1-T2V-1.3B "
        f"transformer (`conf/model/wan2.1_t2v_1.3b_random.yaml`, seeded random weights, "
        f"**{scale['params'] / 1e9:.3f} B parameters**) in {scale['dtype']} on {scale['threads']} thread, "
        f"{scale['text_tokens']} text tokens, {scale['raw']['steps']} steps, "
        "25 % mask. float32 because this CPU has no bf16 matrix units (a bf16 GEMM ran at "
        "0.8 GFLOP/s against 73 in float32); the GPU check runs bf16.",
        "",
        "| clip | tokens | " + " | ".join(f"{m} s/it" for m in rows[0][1]["s_per_it"]) + " | "
        + " | ".join(f"{m} peak GiB" for m in rows[0][1]["peak_rss_gb"]) + " |",
        "|---|---|" + "---|" * (2 * len(rows[0][1]["s_per_it"])),
        *[f"| {size} | {r['tokens']} | " + " | ".join(f"{v:.2f}" for v in r["s_per_it"].values()) + " | "
          + " | ".join(f"{v:.2f}" for v in r["peak_rss_gb"].values()) + " |" for size, r in rows],
        "",
        f"![s/it and peak memory against token count]({plot_name})",
        "",
        "Cost growth, slope of log(s/it) against log(tokens): "
        + ", ".join(f"{m} {g:.2f}" for m, g in growth.items())
        + ". At these sizes a step is token-linear work (projections, FFN) plus a fixed part (cross-attention "
        "K/V over the text, embeddings), so slopes of about 1 or below are expected; the quadratic self-attention "
        "term only takes over at thousands of tokens (480×832×33 frames is 32,760). The spread between "
        "neighbouring sizes is also machine noise.",
        "",
        "| measurement | value | target / paper |",
        "|---|---|---|",
        f"| parameters (transformer) | {scale['params']:,} | ≈ 1.3 B |",
        f"| memory pre-check estimate / measured peak (largest clip, hard_lock) | "
        f"{scale['memory_estimate_ratio']:.3f} | {lo}–{hi} |",
        f"| estimate / measured, every clip and method | "
        f"{min(scale['memory_estimate_ratios'].values()):.3f}–{max(scale['memory_estimate_ratios'].values()):.3f} | "
        f"{lo}–{hi} |",
        f"| K/V store bytes / formula (hard_lock, largest clip) | {scale['kv_store_bytes_vs_formula']:.3f} | 1.000 |",
        f"| kvlock s/it ÷ cfg_zero_star s/it (largest clip; per interleaved repeat: "
        f"{', '.join(f'{r:.2f}' for r in rows[-1][1]['kvlock_vs_cfg_zero_star_per_repeat'])}) | "
        f"{scale['kvlock_vs_cfg_zero_star']:.3f} | "
        f"≤ {TARGETS['kvlock_vs_cfg_zero_star']}; paper {PAPER['kvlock_vs_cfg_zero_star']:.2f} (A100) |",
        f"| the same by the process's CPU time per step (per repeat: "
        f"{', '.join(f'{r:.2f}' for r in scale['raw']['sizes'][-1]['kvlock_vs_cfg_zero_star_cpu_per_repeat'])}) | "
        f"{scale['kvlock_vs_cfg_zero_star_cpu']:.3f} | ≤ {TARGETS['kvlock_vs_cfg_zero_star']} |",
        f"| fg-only hard lock speed-up, edit loop ({fg['size']}, {fg['tokens']} tokens, fg fraction "
        f"{fg['fg_fraction']:.2f}; {fg['s_per_it']['full']:.2f} vs {fg['s_per_it']['fg_only']:.2f} s/it; per "
        f"repeat: {', '.join(f'{r:.2f}' for r in fg['speedup_per_repeat'])}) | {fg['speedup']:.2f}× | "
        f"token-ratio limit {1 / fg['fg_fraction']:.1f}× |",
        f"| sampler equality with WanPipeline (FlowMatchEuler, {eq['steps']} steps, shift {eq['shift']}, "
        f"CFG {eq['guidance_scale']}): latent max abs Δ | {eq['max_abs']:.2e} (frames ≤ {eq['frames_max_lsb']} "
        f"LSB) | ≤ 1e-4 |",
        "",
        *analysis(scale, rows),
        f"Reduced-precision K/V stores (hard_lock, {rows[0][0]}). The random-weight VAE cannot reconstruct "
        "the source, so background PSNR is low for every dtype; what matters is that the reduced stores "
        "leave it unchanged and how far the foreground moves from the float32-store edit:",
        "",
        "| kv_dtype | store bytes | × float32 | bg PSNR vs source | fg PSNR vs float32-store edit |",
        "|---|---|---|---|---|",
        *[f"| {d} | {v['bytes']:,} | {v['ratio']:.3f} | {v['bg_psnr_vs_source']:.2f} | "
          f"{v['fg_psnr_vs_float32_store']:.2f} |" for d, v in kv.items()],
        "",
        *heldout_markdown(scale["kv_dtypes_heldout"]),
        f"Building the model took {scale['build_s']:.0f} s with a build peak of {scale['build_peak_rss_gb']:.2f} GiB "
        "(parameters are created directly in the target dtype, so no float32 copy is held on the way).",
        "",
        SECTION_END,
    ]
    return "\n".join(lines)


def analysis(scale: dict, rows: list) -> list[str]:
    """What the memory and KV-Lock-cost rows mean, from the measured numbers."""
    raw = {r["size"]: r for r in scale["raw"]["sizes"]}
    first, last = raw[rows[0][0]], raw[rows[-1][0]]
    gap = [r["peak_rss"]["hard_lock"] - r["estimate"]["hard_lock"]["total"] for r in (first, last)]
    per_token = (gap[1] - gap[0]) / max(last["tokens"] - first["tokens"], 1)
    margin = TARGETS["kvlock_vs_cfg_zero_star"] - 1
    ratios, cpu_ratios = last["kvlock_vs_cfg_zero_star_per_repeat"], last["kvlock_vs_cfg_zero_star_cpu_per_repeat"]
    if max(ratios) - min(ratios) <= margin:
        verdict = "The per-repeat wall-time ratios agree within the target's margin."
    elif max(cpu_ratios) - min(cpu_ratios) <= margin:
        verdict = ("The per-repeat wall-time ratios differ by more than the target's margin; by CPU time, "
                   "which leaves out the waits for a core, they agree within it.")
    else:
        verdict = ("The per-repeat ratios differ by more than the target's margin even by CPU time, so the "
                   f"median of {len(ratios)} repeats is the CPU estimate and the GPU check, on a dedicated "
                   "device, is the measurement that settles the ≤ 1.10 target.")
    return [
        "The memory estimate counts every resident module (transformer, text encoder, codec), the K/V "
        f"store and the trajectory, and a per-row activation term. Here it is {gap[0] / 2**20:.0f}–"
        f"{gap[1] / 2**20:.0f} MiB under the measured peak; the unmodelled part grows by "
        f"{per_token / 2**20:.2f} MiB per token (codec and attention intermediates), so at GPU sizes the "
        "estimate still has to be checked against the GPU check's measured peak.",
        "",
        "cfg_zero_star and kvlock both run four batch rows per step (target cond/uncond and the noised "
        "source cond/uncond) through the same transformer operations (a profile of both at this "
        "architecture shows the same matrix-multiply and attention calls per step); KV-Lock adds the "
        "variance detector and per-token α, elementwise work on the latent that is small against the "
        f"transformer. {verdict}",
        "",
        *fg_only_analysis(scale, rows),
    ]


def fg_only_analysis(scale: dict, rows: list) -> list[str]:
    """Why the fg-only speed-up at this architecture sits where it does, from the measured rows."""
    fg = scale["fg_only"]
    n_fg = round(fg["tokens"] * fg["fg_fraction"])
    smallest = rows[0][1]
    return [
        f"fg-only hard lock at this architecture: {fg['speedup']:.2f}× against the token-ratio limit "
        f"{1 / fg['fg_fraction']:.1f}×. Its step runs {n_fg} query tokens ({fg['s_per_it']['fg_only']:.2f} s/it) and "
        f"a full-token hard-lock step at {smallest['tokens']} tokens still takes "
        f"{smallest['s_per_it']['hard_lock']:.2f} s: every forward reads all "
        f"{scale['weight_bytes'] / 1e9:.1f} GB of {scale['dtype']} weights whatever the token count, a fixed "
        "part that no token subset removes at CPU sizes. At the paper's 32,760 tokens the token-linear and "
        "attention terms dominate the step and the speed-up approaches the limit.",
        "",
    ]


def heldout_markdown(heldout: dict) -> list[str]:
    if not heldout:
        return ["Held-out clips not found: the reduced-store cost on them was not measured.", ""]
    return [
        "The same on the held-out clips (embedded tiny backbone with its lossless codec, hard_lock, "
        "17 frames halved to 120×212, 6 steps): what the reduced store changes.",
        "",
        "| clip | kv_dtype | bg PSNR vs source | fg PSNR vs float32-store edit | fg mean abs change (0–255) |",
        "|---|---|---|---|---|",
        *[f"| {clip} | {d} | {v['bg_psnr_vs_source']:.2f} | {v['fg_psnr_vs_float32_store']:.2f} | "
          f"{v['fg_mean_abs_change_vs_float32_store']:.3f} |"
          for clip, rows in heldout.items() for d, v in rows.items()],
        "",
        "Background PSNR is finite even for the float32 store because background pixels that share a token "
        "with the mask are regenerated; it does not change with the store dtype.",
        "",
    ]


def replace_section(path: Path, text: str, begin: str, end: str) -> None:
    """Replace the `begin`…`end` block of a results file in place (append it when absent); atomic."""
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def run_section(quick: bool, results: Path | None, machine: str) -> dict:
    plan = QUICK if quick else FULL
    machine += f", load average {os.getloadavg()[0]:.1f} at the start"
    print(f"[scale] {'quick' if quick else 'full'}: {plan.sizes}, {plan.steps} steps", flush=True)
    raw = run_child(plan)
    from benchmarks.sampler_check import pipeline_equivalence

    with tempfile.TemporaryDirectory() as root:
        equivalence = pipeline_equivalence(root)
    heldout = heldout_kv_dtype_costs(quick)
    scale = summarise(raw, equivalence, heldout)
    if results is not None:
        plot_path = results.with_name("scale_cpu.png")
        plot(scale, plot_path)
        replace_section(results, markdown(scale, plot_path.name, machine), SECTION_BEGIN, SECTION_END)
        print(f"[scale] wrote {results} and {plot_path}", flush=True)
    return scale


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(ScalePlan(**json.loads(sys.argv[2])))))
    else:
        sys.exit("usage: python -m benchmarks.perf --section scale [--quick] [--json FILE]")
