"""Every knob of the editing engine (DESIGN §1) as one dataclass; methods are values of it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

SOURCES = ("inversion", "noised")
INITS = ("inversion", "noised", "reinit")
BG_KV = ("none", "const", "variance")
COMPOSE = ("none", "every_step", "final")
GUIDANCE_RULES = ("none", "cfg", "cfg_zero_star", "apg")
OMEGA_RULES = ("constant", "literal", "boost")
SIGNALS = ("fg", "global", "token")
KV_BRANCHES = ("per_branch", "cond")
KV_STORES = ("memory", "cpu")
KV_DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3fn")  # storage only; see engine/kv_store.py
NONFINITE = ("fail", "stop")
TIMESTEP_GRIDS = ("linear", "diffusers")  # see engine/timesteps.py


@dataclass
class GuidanceConfig:
    """Classifier-free guidance rule. `omega_rule` makes ω follow the hallucination signal."""

    rule: str = "cfg"
    scale: float = 5.0
    omega_rule: str = "constant"
    omega_max_ratio: float = 2.0  # b in ω0·clamp(σ²/τ, 0, b)
    boost_gamma: float = 1.0  # γ in ω0·(1 + γ·clamp(σ²/τ, 0, b))
    zero_init_steps: int = 0  # CFG-Zero*: velocity zeroed for the first k steps
    eps: float = 1e-8
    apg_eta: float = 0.0
    apg_norm_threshold: float = 0.0
    apg_momentum: float = 0.0


@dataclass
class DetectorConfig:
    """Hallucination detector: sample variance of x̂0 over a sliding window of W steps."""

    window: int = 10  # W
    active_last: int = 20  # κ: active only in the last κ steps
    tau: float = 0.01  # τ
    signal: str = "fg"  # fg tokens (default), global (ablation), token (per-token locking)
    inactive_alpha: float = 1.0  # α outside the active window (or before W samples exist)


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
    def needs_inversion(self) -> bool:
        return (self.source == "inversion" and (self.needs_source_kv or self.compose == "every_step")) \
            or self.init in ("inversion", "reinit")

    def validate(self) -> None:
        choices = {
            "source": (self.source, SOURCES),
            "init": (self.init, INITS),
            "bg_kv": (self.bg_kv, BG_KV),
            "compose": (self.compose, COMPOSE),
            "guidance.rule": (self.guidance.rule, GUIDANCE_RULES),
            "guidance.omega_rule": (self.guidance.omega_rule, OMEGA_RULES),
            "detector.signal": (self.detector.signal, SIGNALS),
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
            hard = self.bg_kv == "const" and self.alpha == 1.0 and not self.uses_variance
            if not (hard and self.source == "inversion" and self.compose == "every_step"):
                raise ValueError(
                    "method.fg_only needs a hard lock: source=inversion, bg_kv=const with alpha=1, "
                    "compose=every_step and a constant guidance scale"
                )
            if self.injection != "none":
                raise ValueError("method.fg_only cannot be combined with full-frame injection")
        if self.guidance.omega_rule != "constant" and self.guidance.rule == "none":
            raise ValueError("a variance-driven ω needs a guidance rule (cfg, cfg_zero_star or apg)")

    @classmethod
    def from_dict(cls, data: dict) -> EditConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown method keys {unknown}. Available: {', '.join(sorted(known))}")
        return cls(**data)
