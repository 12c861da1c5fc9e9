"""Every knob of the editing engine (DESIGN §1) as one dataclass; methods are values of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

SOURCES = ("inversion", "noised")
INITS = ("inversion", "noised", "reinit")
BG_KV = ("none", "const", "variance")
COMPOSE = ("none", "every_step", "final")
LATENT_UPDATES = ("euler", "source_delta")
CONDITIONINGS = ("none", "vace")
GUIDANCE_RULES = ("none", "cfg", "cfg_zero_star", "apg")
OMEGA_RULES = ("constant", "literal", "boost")
SIGNALS = ("fg", "global", "token")
GUIDANCE_REGIONS = ("all", "fg")
KV_BRANCHES = ("per_branch", "cond")
KV_STORES = ("memory", "cpu")
KV_DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3fn")  # storage only; see engine/kv_store.py
NONFINITE = ("fail", "stop")
TIMESTEP_GRIDS = ("linear", "diffusers")  # see engine/timesteps.py


@dataclass
class GuidanceConfig:
    """Classifier-free guidance rule. `omega_rule` makes ω follow the hallucination signal;
    `region` says where that ω applies (`fg`: background elements keep the base scale ω0)."""

    rule: str = "cfg"
    scale: float = 5.0
    omega_rule: str = "constant"
    region: str = "all"
    omega_max_ratio: float = 2.0  # b in ω0·clamp(σ²/τ, 0, b)
    boost_gamma: float = 1.0  # γ in ω0·(1 + γ·clamp(σ²/τ, 0, b))
    zero_init_steps: int = 0  # CFG-Zero*: velocity zeroed for the first k steps
    eps: float = 1e-8
    apg_eta: float = 0.0  # η: weight of the parallel part of the x̂0 update
    apg_norm_threshold: float = 0.0  # r: cap on ‖Δx̂0‖ (0 = off)
    apg_momentum: float = 0.0  # β: running average Δ ← Δ + β·Δ_prev (negative = reverse)


@dataclass
class DetectorConfig:
    """Hallucination detector: sample variance of x̂0 over a sliding window, active at the end.

    `window` (W) and `active_last` (κ) are fractions of the schedule: the paper's W = 10 and
    κ = 20 steps read at 50 steps are 0.2 and 0.4, so 10- and 50-step runs keep the same shape.
    """

    window: float = 0.2  # W / steps
    active_last: float = 0.4  # κ / steps: active only in the last κ steps
    tau: float = 0.01  # τ
    signal: str = "fg"  # fg tokens (default), global (ablation), token (per-token locking)
    inactive_alpha: float = 1.0  # α outside the active window (or before 2 predictions exist)

    def window_steps(self, steps: int) -> int:
        """W in steps: window·steps rounded half up, at least 2 (a sample variance needs two)."""
        return max(2, math.floor(self.window * steps + 0.5))

    def active_steps(self, steps: int) -> int:
        """κ in steps: active_last·steps rounded half up."""
        return math.floor(self.active_last * steps + 0.5)

    def validate(self, steps: int) -> None:
        for key, fraction in (("window", self.window), ("active_last", self.active_last)):
            if not 0.0 < fraction < 1.0:
                raise ValueError(
                    f"method.detector.{key}={fraction} must be a fraction of the schedule in (0, 1): "
                    "0 is an empty window, 1 the whole run"
                )
        kappa = self.active_steps(steps)
        if not 0 < kappa < steps:
            what = "no step" if kappa == 0 else "every step"
            raise ValueError(
                f"method.detector.active_last={self.active_last} makes {what} of steps={steps} active "
                f"({self.active_last}·{steps} rounds to {kappa}); it must give 1 to {steps - 1} steps"
            )


@dataclass
class EditConfig:
    """One configuration of the engine. See DESIGN §1 for the meaning of each knob."""

    name: str = "custom"
    steps: int = 10
    shift: float = 3.0
    timestep_grid: str = "linear"
    skip_steps: int = 0
    source: str = "inversion"
    init: str = "inversion"
    init_strength: float = 1.0
    bg_kv: str = "const"
    alpha: float = 1.0
    fg_only: bool = False
    compose: str = "every_step"
    latent_update: str = "euler"
    conditioning: str = "none"  # what the backbone must read beyond the prompt (vace: masked source)
    paste_back: bool = False
    attn_mask: bool = False
    attn_scale: float = 0.0
    injection: str = "none"
    injection_beta: float = 1.0
    injection_steps: int = 0
    kv_branch: str = "per_branch"
    kv_store: str = "memory"
    kv_dtype: str = "float32"
    mask_dilation: int = 0
    target_prompt_is_source: bool = False
    nonfinite: str = "fail"
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self):
        if isinstance(self.guidance, dict):
            self.guidance = GuidanceConfig(**self.guidance)
        if isinstance(self.detector, dict):
            self.detector = DetectorConfig(**self.detector)
        self.validate()

    @property
    def uses_variance(self) -> bool:
        return self.bg_kv == "variance" or self.guidance.omega_rule != "constant"

    @property
    def needs_source_kv(self) -> bool:
        """Whether any step reads source K/V (otherwise no capture and no source rows run)."""
        return self.bg_kv != "none" or self.injection == "full"

    @property
    def runs_source_rows(self) -> bool:
        """Whether each edit step also runs the forward-noised source (noised provider, or the
        inversion-free update that needs the source velocity)."""
        source_velocity = self.latent_update == "source_delta"
        return self.source == "noised" and (self.needs_source_kv or source_velocity)

    @property
    def needs_inversion(self) -> bool:
        return (self.source == "inversion" and (self.needs_source_kv or self.compose == "every_step")) \
            or self.init in ("inversion", "reinit")

    def validate(self) -> None:
        choices = {
            "source": (self.source, SOURCES),
            "init": (self.init, INITS),
            "bg_kv": (self.bg_kv, BG_KV),
            "compose": (self.compose, COMPOSE),
            "latent_update": (self.latent_update, LATENT_UPDATES),
            "conditioning": (self.conditioning, CONDITIONINGS),
            "guidance.rule": (self.guidance.rule, GUIDANCE_RULES),
            "guidance.omega_rule": (self.guidance.omega_rule, OMEGA_RULES),
            "detector.signal": (self.detector.signal, SIGNALS),
            "guidance.region": (self.guidance.region, GUIDANCE_REGIONS),
            "kv_branch": (self.kv_branch, KV_BRANCHES),
            "kv_store": (self.kv_store, KV_STORES),
            "kv_dtype": (self.kv_dtype, KV_DTYPES),
            "injection": (self.injection, ("none", "full")),
            "nonfinite": (self.nonfinite, NONFINITE),
            "timestep_grid": (self.timestep_grid, TIMESTEP_GRIDS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"method.{key}={value!r} is not one of {', '.join(allowed)}")
        if not 0 <= self.skip_steps < self.steps:
            raise ValueError(f"method.skip_steps={self.skip_steps} must be in [0, steps={self.steps})")
        if self.fg_only:
            # fg-only needs every background K/V from the source (α ≡ 1: the inversion cache, or
            # the noised source's own forward run first in the step) and the background latents
            # pasted from the source: then the fg tokens see exactly what they see in a full run.
            # Guidance and detector reduce over the kept (fg) elements in both runs, so any
            # guidance rule and ω schedule stays a pure speed-up.
            hard = self.bg_kv == "const" and self.alpha == 1.0
            if not (hard and self.compose == "every_step"):
                raise ValueError(
                    "method.fg_only needs a hard lock: bg_kv=const with alpha=1 and "
                    "compose=every_step (source inversion or noised)"
                )
            if self.injection != "none":
                raise ValueError("method.fg_only cannot be combined with full-frame injection")
        if self.latent_update == "source_delta" and not (
            self.source == "noised" and self.init == "noised" and self.compose == "every_step"
        ):
            raise ValueError(
                "method.latent_update=source_delta (KV-Edit inversion-free) needs source=noised, "
                "init=noised and compose=every_step: the target is the noised source plus an edit "
                "displacement inside the mask"
            )
        if self.attn_mask and not (self.needs_inversion or self.runs_source_rows):
            raise ValueError(
                "method.attn_mask=true separates fg and bg in the source pass, but this "
                "configuration runs none (source=noised with bg_kv=none and latent_update=euler, "
                "no inversion)"
            )
        if self.guidance.omega_rule != "constant" and self.guidance.rule == "none":
            raise ValueError("a variance-driven ω needs a guidance rule (cfg, cfg_zero_star or apg)")
        if self.guidance.zero_init_steps < 0:
            raise ValueError(f"method.guidance.zero_init_steps={self.guidance.zero_init_steps} must be >= 0")
        if self.uses_variance:
            self.detector.validate(self.steps)

    @classmethod
    def from_dict(cls, data: dict) -> EditConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown method keys {unknown}. Available: {', '.join(sorted(known))}")
        return cls(**data)
