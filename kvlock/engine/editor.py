"""The one inversion/edit loop (flow-matching Euler) that every method configures."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from kvlock.data.sample import EditSample
from kvlock.engine.config import EditConfig
from kvlock.engine.controller import KVController, Row
from kvlock.engine.guidance import Guidance
from kvlock.engine.kv_store import KVStore
from kvlock.engine.policy import build_policy
from kvlock.engine.timesteps import flow_timesteps
from kvlock.engine.token_mask import (
    latent_box,
    latent_mask,
    pixel_region,
    token_mask,
    tokens_to_latent,
)


def crop(tensor: torch.Tensor | None, box: tuple[slice, ...] | None) -> torch.Tensor | None:
    """tensor (..., F, h, w) -> its view inside the latent `box`; unchanged when either is None."""
    if tensor is None or box is None:
        return tensor
    return tensor[(..., *box)]


class NonFiniteError(RuntimeError):
    """A latent or prediction became NaN/inf. `abort=True` asks the runner to stop the sweep."""

    def __init__(self, message: str, step: int, abort: bool):
        super().__init__(message)
        self.step = step
        self.abort = abort


@dataclass
class EditOutput:
    """frames (T, H, W, 3) uint8; latents (1, C, F, h, w) final latent; trace: one dict per
    denoising step; nfe: transformer evaluations counted per batch row (CFG counts 2)."""

    frames: np.ndarray
    latents: torch.Tensor
    trace: list[dict]
    nfe: int
    stats: dict = field(default_factory=dict)


@dataclass
class Inversion:
    """Source trajectory latents by grid index (t_i), and the K/V captured on the way."""

    trajectory: dict[int, torch.Tensor]
    store: KVStore | None
    nfe: int
    cache_hit: bool = False

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"traj.{i}": x.cpu() for i, x in self.trajectory.items()}
        if self.store is not None:
            out.update({k: v.cpu() for k, v in self.store.state_dict().items()})
        return out

    @property
    def nbytes(self) -> int:
        traj = sum(x.nbytes for x in self.trajectory.values())
        return traj + (self.store.nbytes if self.store is not None else 0)


class Editor:
    """Runs one edit: encode → (invert) → denoise under KV control → decode.

    Set-up shared by the inversion and the edit lives here: latents z0 (1, C, F, h, w), the
    token masks, the time grid, the prompt embeddings, the seeded noise (drawn on first use) and
    the controller.
    """

    def __init__(self, backbone, sample: EditSample, config: EditConfig, seed: int,
                 source_cache=None, callback: Callable[[dict], None] | None = None):
        self.backbone, self.sample, self.config = backbone, sample, config
        self.source_cache, self.callback, self.seed = source_cache, callback, int(seed)
        device = backbone.device
        geometry = backbone.geometry
        self.z0 = backbone.encode_video(sample.frames)
        fg_tokens = token_mask(sample.mask, geometry, config.mask_dilation)
        self.fg_flat = fg_tokens.flatten().to(device)
        self.fg_latent = tokens_to_latent(fg_tokens, geometry).to(device)  # (1, 1, F, h, w)
        self.fg_box = latent_box(fg_tokens, geometry)  # (F, h, w) slices around the fg tokens
        # Latent pixels the edit generates; composition pastes the source everywhere else, per
        # latent pixel (K/V locking stays per token).
        self.compose_mask = latent_mask(sample.mask, geometry, config.mask_dilation).to(device)
        self.ts = flow_timesteps(config.steps, config.shift, config.timestep_grid).to(device)
        target = sample.source_prompt if config.target_prompt_is_source else sample.target_prompt
        embeds = backbone.encode_prompt([sample.source_prompt, target, backbone.negative_prompt])
        self.context = {"source": embeds[0:1], "target": embeds[1:2], "negative": embeds[2:3]}
        self.controller = KVController(self.fg_flat)
        self.kv_index = (
            torch.arange(len(self.fg_flat), device=device)
            if config.injection == "full"
            else self.controller.bg_index
        )
        self.controller.kv_index = self.kv_index
        self.uses_uncond = config.guidance.rule != "none"
        self.target_branches = ["cond", "uncond"] if self.uses_uncond else ["cond"]
        self.source_branches = self.target_branches if config.kv_branch == "per_branch" else ["cond"]
        self.nfe = 0

    # --- helpers ---------------------------------------------------------------------------

    @cached_property
    def noise(self) -> torch.Tensor:
        """(1, C, F, h, w) seeded Gaussian ε: the generation's start and the forward-noised
        source's noise. Drawn on first use from its own seeded generator, so the draw does not
        depend on when it happens, and an edit that never reads it (one that starts from its
        inversion) skips a whole-latent draw."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randn(self.z0.shape, generator=generator).to(self.backbone.device)

    def noised_source(self, t: torch.Tensor, box: tuple[slice, ...] | None = None) -> torch.Tensor:
        """(1 − t)·z0 + t·ε, the source forward-noised to time t (inside `box` only, if given)."""
        return (1.0 - t) * crop(self.z0, box) + t * crop(self.noise, box)

    def context_for(self, row: Row) -> torch.Tensor:
        if row.branch == "uncond":
            return self.context["negative"]
        return self.context["source" if row.role == "source" else "target"]

    def forward(self, rows: list[Row], latents: list[torch.Tensor], t: torch.Tensor,
                token_index: torch.Tensor | None = None, box: tuple[slice, ...] | None = None) -> torch.Tensor:
        """One batched transformer call; (len(rows), C, F, h, w) velocities, or (len(rows), C,
        *box sizes) for fg-only rows (`token_index`) whose output is cropped to `box`."""
        self.controller.rows = rows
        first = latents[0]
        if all(latent is first for latent in latents):  # CFG rows of one latent: a view, no copy
            batch = first.expand(len(latents), *first.shape[1:])
        else:
            batch = torch.cat(latents)
        context = torch.cat([self.context_for(r) for r in rows])
        self.nfe += len(rows)
        if box is not None:
            return self.backbone.velocity_in_box(batch, t.expand(len(rows)), context, token_index, box)
        return self.backbone.velocity(batch, t.expand(len(rows)), context, token_index)

    def check_finite(self, tensor: torch.Tensor, what: str, step: int, t: float) -> None:
        """A NaN or inf anywhere makes the sum non-finite, so one reduction clears the usual case
        (a sixteenth of the element-wise test's cost); a non-finite sum (possibly an overflow of
        finite values) falls back to the element-wise test."""
        if torch.isfinite(tensor.sum()):
            return
        if not torch.isfinite(tensor).all():
            raise NonFiniteError(
                f"non-finite {what} at step {step} (t={t:.4f})", step, abort=self.config.nonfinite == "stop"
            )

    # --- inversion -------------------------------------------------------------------------

    def cache_key(self, capture_branches: list[str]) -> str:
        c = self.config
        params = {
            "model": self.backbone.name,
            "model_info": self.backbone.info,
            "steps": c.steps,
            "shift": c.shift,
            "timestep_grid": c.timestep_grid,
            "skip": c.skip_steps,
            "attn_mask": c.attn_mask,
            "capture": capture_branches,
            "injection": c.injection,
            "kv_dtype": c.kv_dtype,
            "prompt": self.sample.source_prompt,
            "negative": self.backbone.negative_prompt,
            "dtype": str(self.backbone.dtype),
        }
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        # the arrays' own buffers (a C-contiguous view hashes the same bytes as tobytes(), uncopied)
        h.update(np.ascontiguousarray(self.z0.cpu().numpy()))
        h.update(np.ascontiguousarray(self.fg_flat.cpu().numpy()))
        return "inversion-" + h.hexdigest()[:32]

    def invert(self) -> Inversion:
        """Euler ODE inversion t: 0 → t_skip with the source prompt; captures K/V when the source
        provider is `inversion`. Interval i = [t_{i+1}, t_i] stores its K/V under key i."""
        c = self.config
        capture = self.source_branches if c.source == "inversion" and c.needs_source_kv else []
        key = self.cache_key(capture)
        if self.source_cache is not None:
            cached = self.source_cache.load(key)
            if cached is not None:
                return self.inversion_from_tensors(cached, bool(capture))
        store = KVStore(c.kv_store, c.kv_dtype) if capture else None
        ctrl = self.controller
        ctrl.set_plain()
        ctrl.store = store
        # KV-Edit AM holds for the whole inversion, trajectory included (models/kv_edit.py
        # `Flux_kv_edit.inverse` sets info['attention_mask'] for every inversion step)
        ctrl.separate_fg_bg = c.attn_mask
        if capture:
            ctrl.mode = "capture"
        rows = [Row("source", b) for b in (capture or ["cond"])]
        x = self.z0.clone()
        trajectory = {c.steps: self.z0.clone()}
        nfe0 = self.nfe
        for i in reversed(range(c.skip_steps, c.steps)):
            t_lo, t_hi = self.ts[i + 1], self.ts[i]
            ctrl.step = i
            v = self.forward(rows, [x] * len(rows), t_lo)[0:1]
            x = x + (t_hi - t_lo) * v
            self.check_finite(x, "inversion latent", i, float(t_hi))
            trajectory[i] = x.clone()
        ctrl.set_plain()
        inversion = Inversion(trajectory, store, self.nfe - nfe0)
        if self.source_cache is not None:
            self.source_cache.save(key, inversion.tensors())
        return inversion

    def inversion_from_tensors(self, tensors: dict[str, torch.Tensor], has_kv: bool) -> Inversion:
        device = self.backbone.device
        trajectory = {int(k.split(".")[1]): v.to(device) for k, v in tensors.items() if k.startswith("traj.")}
        store = None
        if has_kv:
            store = KVStore(self.config.kv_store, self.config.kv_dtype)
            store.load_state_dict({k: v for k, v in tensors.items() if k.startswith("kv.")})
        return Inversion(trajectory, store, nfe=0, cache_hit=True)

    # --- edit ------------------------------------------------------------------------------

    def start_step(self) -> int:
        c = self.config
        if c.init != "noised":
            return c.skip_steps
        later = [i for i in range(c.steps) if float(self.ts[i]) <= c.init_strength + 1e-6]
        return max(c.skip_steps, later[0] if later else c.steps - 1)

    def initial_latent(self, start: int, inversion: Inversion | None) -> torch.Tensor:
        """Start latent; with `every_step` composition its background is the source's already,
        as KV-Edit blends before each step's forward (Xilluill/KV-Edit flux/sampling.py
        `denoise_kv`)."""
        c, t = self.config, self.ts[start]
        if c.init == "noised":
            x = self.noised_source(t)
        elif c.init == "reinit":
            x = torch.where(self.compose_mask, self.noised_source(t), inversion.trajectory[start])
        else:
            x = inversion.trajectory[start].clone()
            if c.source == "inversion":  # the background is this same latent: nothing to paste
                return x
        if c.compose == "every_step":
            x = torch.where(self.compose_mask, x, self.source_latent(start, inversion))
        return x

    def source_latent(self, index: int, inversion: Inversion | None,
                      box: tuple[slice, ...] | None = None) -> torch.Tensor:
        """Background latent at grid time t_index: the inversion trajectory or the noised source
        (inside `box` only, if given)."""
        if self.config.source == "inversion":
            return crop(inversion.trajectory[index], box)
        return self.noised_source(self.ts[index], box)

    def step_box(self, observed: bool) -> tuple[slice, ...] | None:
        """The latent box the per-step arithmetic (guidance, Euler step, paste) may run on instead
        of the whole latent, or None for the whole latent.

        fg-only under every-step composition: the velocity is 0 outside the fg tokens and every
        latent pixel outside the composition mask (which lies inside the fg tokens) is pasted from
        the source, so outside the fg tokens' box the step's result is the source latent whatever
        the step computes. The box is used unless something reads whole-latent tensors each step
        (`observed`: a step callback or a schedule that watches x̂0)."""
        c = self.config
        if not c.fg_only or c.compose != "every_step" or observed:
            return None
        return self.fg_box

    def generated_latent(self) -> torch.Tensor | None:
        """(1, 1, F, h, w) bool: the latent elements whose velocity the edit keeps (the rest is
        pasted from the source every step, per latent pixel); None = all. Guidance and detector
        reduce over these. It lies inside the fg tokens, so fg-only and full-token runs agree."""
        return self.compose_mask if self.config.compose == "every_step" else None

    def alpha_for_step(self, step: int, start: int, policy_alpha: torch.Tensor) -> torch.Tensor:
        """α over the cached tokens: the policy's α on bg tokens; β on all tokens while injecting."""
        c = self.config
        if c.injection != "full":
            return policy_alpha
        alpha = torch.zeros(len(self.kv_index), device=policy_alpha.device)
        alpha[self.controller.bg_index] = policy_alpha
        if step - start < c.injection_steps:
            alpha[:] = c.injection_beta
        return alpha

    def configure_edit_step(self, step: int, alpha: torch.Tensor, store: KVStore | None) -> list[Row]:
        c, ctrl = self.config, self.controller
        ctrl.mode = "edit" if c.needs_source_kv or c.runs_source_rows else "plain"
        ctrl.step, ctrl.store, ctrl.alpha = step, store, alpha
        ctrl.bg_logit_bias = c.attn_scale
        ctrl.separate_fg_bg = c.attn_mask and c.runs_source_rows
        ctrl.query_index = self.controller.fg_index if c.fg_only else None
        rows = [Row("target", b) for b in self.target_branches]
        ctrl.store_branch_of = {r: (b if c.kv_branch == "per_branch" else "cond")
                                for r, b in enumerate(self.target_branches)}
        ctrl.source_row_of = {}
        if c.runs_source_rows:
            first_source = len(rows)
            rows += [Row("source", b) for b in self.source_branches]
            ctrl.source_row_of = {
                r: first_source + self.source_branches.index(ctrl.store_branch_of[r])
                for r in range(len(self.target_branches))
            }
        return rows

    def run(self) -> EditOutput:
        c = self.config
        inversion = self.invert() if c.needs_inversion else None
        store = inversion.store if inversion is not None else None
        start = self.start_step()
        generated = self.generated_latent()
        policy = build_policy(c, self.fg_latent, self.controller.bg_index, self.backbone.geometry, generated)
        box = self.step_box(policy.observes or self.callback is not None)
        guidance = Guidance(c.guidance, crop(self.fg_latent, box), crop(generated, box))
        compose_mask = crop(self.compose_mask, box)
        x = self.initial_latent(start, inversion)
        # With a box, x is the box and `canvas` the whole latent the transformer reads: fg-only
        # rows read only their tokens' latents, which are the box's, written back every step.
        canvas = x.clone() if box is not None else None
        x = crop(x, box)
        trace = []
        for i in range(start, c.steps):
            t_hi, t_lo = self.ts[i], self.ts[i + 1]
            control = policy.control(i)
            alpha = self.alpha_for_step(i, start, control.alpha)
            rows = self.configure_edit_step(i, alpha, store)
            latents = [x if canvas is None else canvas] * len(self.target_branches)
            if c.runs_source_rows:
                latents += [self.noised_source(t_hi)] * len(self.source_branches)
            if c.fg_only and c.runs_source_rows:
                v_all = self.forward_fg_only_with_noised_source(rows, latents, t_hi, box)
            else:
                token_index = self.controller.fg_index if c.fg_only else None
                v_all = self.forward(rows, latents, t_hi, token_index, box)
            v_cond = v_all[0:1]
            v_uncond = v_all[1:2] if self.uses_uncond else None
            first_source = len(self.target_branches)
            v_source = v_all[first_source:first_source + 1] if c.runs_source_rows else None
            v, s_star = guidance(x, t_hi, v_cond, v_uncond, control.omega, control.omega_bg, i - start)
            self.check_finite(v, "velocity", i, float(t_hi))
            x0_hat = None  # formed only for a schedule or a callback that reads it
            if policy.observes or self.callback is not None:
                x0_hat = x - t_hi * v
                policy.observe(i, x0_hat)
            x_next = self.step_latent(x, v, v_source, t_hi, t_lo, box)
            if c.compose == "every_step":
                x_next = torch.where(compose_mask, x_next, self.source_latent(i + 1, inversion, box))
            self.check_finite(x_next, "latent", i, float(t_hi))
            trace.append(self.trace_row(i, float(t_hi), alpha, control, s_star))
            if self.callback is not None:
                self.callback({"step": i, "t": float(t_hi), "x_t": x, "x0_hat": x0_hat, "v": v,
                               "v_cond": v_cond, "v_uncond": v_uncond, "v_source": v_source,
                               "alpha": alpha, "omega": control.omega})
            x = x_next
            if canvas is not None:
                canvas[(..., *box)] = x
        self.controller.set_plain()
        if box is not None:  # outside the box the last paste leaves the source at t = 0
            x_box, x = x, self.source_latent(c.steps, inversion).clone()
            x[(..., *box)] = x_box
        if c.compose == "final":
            x = torch.where(self.compose_mask, x, self.z0)
        frames = self.backbone.decode_latents(x)
        if c.paste_back:
            frames = self.paste_source(frames)
        return EditOutput(frames, x, trace, self.nfe, self.stats(inversion, store, policy.nbytes))

    def forward_fg_only_with_noised_source(self, rows: list[Row], latents: list[torch.Tensor],
                                           t: torch.Tensor, box: tuple[slice, ...] | None = None) -> torch.Tensor:
        """fg-only under the noised source provider (KV-Edit's inversion-free edit runs only the
        masked tokens as target queries: Xilluill/KV-Edit models/kv_edit.py `Flux_kv_edit_inf`).

        The rows `configure_edit_step` built run in two calls: the source rows over all tokens
        first, capturing their background K/V for this step into a one-step store (O(1) memory,
        model dtype), then the target rows over the fg tokens, reading those K/V as the hard lock
        reads its inversion cache. -> (len(rows), C, F, h, w) velocities, target rows first (all
        cropped to `box` if given).
        """
        ctrl, n_target = self.controller, len(self.target_branches)
        targets, sources = rows[:n_target], rows[n_target:]
        step_store = KVStore("memory", str(self.backbone.dtype).removeprefix("torch."))
        ctrl.mode, ctrl.store, ctrl.query_index = "capture", step_store, None
        v_source = self.forward(sources, latents[n_target:], t)
        ctrl.mode, ctrl.query_index, ctrl.source_row_of = "edit", ctrl.fg_index, {}
        ctrl.separate_fg_bg = False  # AM applies to the source pass only
        v_target = self.forward(targets, latents[:n_target], t, ctrl.fg_index, box)
        return torch.cat([v_target, crop(v_source, box)])

    def step_latent(self, x: torch.Tensor, v: torch.Tensor, v_source: torch.Tensor | None,
                    t_hi: torch.Tensor, t_lo: torch.Tensor, box: tuple[slice, ...] | None = None) -> torch.Tensor:
        """One Euler step t_hi -> t_lo of the target latent (1, C, F, h, w), or of its `box`.

        `euler`: x + dt·v. `source_delta` (KV-Edit inversion-free, Xilluill/KV-Edit flux/sampling.py
        `denoise_kv_inf`): x = z_src(t) + Δ with z_src(t) the noised source and Δ = z_fe − z0, so
        z_fe += dt·(v_tar − v_src) is Δ += dt·(v − v_source); the per-pixel mask on the update is
        the `every_step` composition that follows (Δ = 0 outside the mask).
        """
        dt = t_lo - t_hi
        if self.config.latent_update == "source_delta":
            delta = x - self.noised_source(t_hi, box)
            return self.noised_source(t_lo, box) + delta + dt * (v - v_source)
        return x + dt * v

    def paste_source(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 decoded edit -> the same with the source pixels pasted outside the
        (dilated) pixel mask: a pixel-space paste after decoding, exact whatever the codec."""
        region = pixel_region(self.sample.mask, self.backbone.geometry, self.config.mask_dilation)
        return np.where(region[..., None], frames, self.sample.frames)

    def trace_row(self, step: int, t: float, alpha: torch.Tensor, control, s_star) -> dict:
        bg_alpha = alpha[self.controller.bg_index] if self.config.injection == "full" else alpha
        if len(bg_alpha):
            mean = float(bg_alpha.mean())
            if bool(bg_alpha.min() == bg_alpha.max()):  # a constant α: every quantile is it
                q10 = q50 = q90 = float(bg_alpha[0].float())
            else:
                q10, q50, q90 = torch.quantile(bg_alpha.float(), torch.tensor([0.1, 0.5, 0.9],
                                               device=bg_alpha.device)).tolist()
        else:
            q10 = q50 = q90 = mean = float("nan")
        return {
            "step": step, "t": t, "sigma2": control.sigma2, "active": control.active,
            "alpha_mean": mean, "alpha_q10": q10, "alpha_q50": q50, "alpha_q90": q90,
            "omega": float(control.omega), "omega_fg": float(control.omega),
            "omega_bg": float(control.omega_bg), "s_star": s_star, "nfe": self.nfe,
        }

    def stats(self, inversion: Inversion | None, store: KVStore | None, policy_bytes: int) -> dict:
        """Counts of the edit; `detector_bytes`: what the α/ω schedule kept across steps (KV-Lock's
        variance window, W·E·4 + 2·E·8 bytes for E watched elements; 0 for constant schedules)."""
        c = self.config
        return {
            "kv_store_bytes": store.nbytes if store is not None else 0,
            "retained_bytes": inversion.nbytes if inversion is not None else 0,
            "detector_bytes": policy_bytes,
            "source_cache_hit": bool(inversion is not None and inversion.cache_hit),
            "inversion_nfe": inversion.nfe if inversion is not None else 0,
            "guidance_rule": c.guidance.rule,
            "omega_rule": c.guidance.omega_rule,
            "guidance_region": c.guidance.region,
            "fg_tokens": int(self.fg_flat.sum()),
            "total_tokens": int(self.fg_flat.numel()),
        }


def run_edit(backbone, sample: EditSample, config: EditConfig, seed: int, source_cache=None,
             callback: Callable[[dict], None] | None = None) -> EditOutput:
    """Edit one sample with one method configuration (the engine's single entry point)."""
    if config.conditioning != "none" and config.conditioning != backbone.conditioning:
        raise ValueError(
            f"method {config.name} needs a backbone that reads method.conditioning="
            f"{config.conditioning} (model=wan_vace_tiny or model=wan2.1_vace_1.3b); "
            f"{backbone.name} does not, so it would sample plain text-to-video")
    backbone.condition_on(sample)
    editor = Editor(backbone, sample, config, seed, source_cache, callback)
    backbone.install_kv_control(editor.controller)
    try:
        return editor.run()
    finally:
        backbone.remove_kv_control()
