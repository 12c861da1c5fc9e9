"""Methods are named configurations of the engine (`conf/method/*.yaml` -> EditConfig)."""

from __future__ import annotations

from pathlib import Path

from kvlock.engine.config import EditConfig

METHOD_DIR = Path(__file__).resolve().parents[2] / "conf" / "method"


def available_methods() -> list[str]:
    """Names of the method configs shipped in conf/method (base excluded)."""
    return sorted(p.stem for p in METHOD_DIR.glob("*.yaml") if p.stem != "base")


def build_method(cfg) -> EditConfig:
    """A composed `method` config (DictConfig or dict) -> validated EditConfig."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return EditConfig.from_dict(dict(cfg))


def compose_method(name: str, overrides: list[str] | None = None, steps: int = 10,
                   shift: float = 3.0, guidance_scale: float = 5.0) -> EditConfig:
    """Compose `conf/method/<name>.yaml` outside a Hydra app (notebooks, tests, benchmarks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if name not in available_methods():
        raise ValueError(f"Unknown method '{name}'. Available: {', '.join(available_methods())}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(METHOD_DIR.parent), version_base="1.3"):
        cfg = compose(
            config_name="method_only",
            overrides=[f"method={name}", f"sampler.steps={steps}", f"sampler.shift={shift}",
                       f"sampler.guidance_scale={guidance_scale}", *(overrides or [])],
        )
    return build_method(cfg.method)
