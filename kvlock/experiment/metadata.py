"""What identifies a run: config hash, run id, git SHA, package versions, resolved config."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Config sections that change results; paths, loggers, run options and hydra do not.
HASHED_KEYS = ("model", "method", "dataset", "metrics", "sampler", "seed")
PACKAGES = ("torch", "diffusers", "transformers", "torchmetrics", "kvlock")
REPO = Path(__file__).resolve().parents[2]


def resolved_config(cfg: DictConfig) -> dict:
    """The job's config as plain data, interpolations resolved, without the `hydra` node."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("hydra", None)
    return data


def config_hash(config: dict) -> str:
    """16 hex digits of sha256 over the result-relevant sections of a resolved config."""
    relevant = {k: config.get(k) for k in HASHED_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_sha() -> str:
    """HEAD of the kvlock checkout, '+dirty' when tracked files changed; 'unknown' outside git."""
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


@dataclass(frozen=True)
class RunInfo:
    """The columns every row of one job shares."""

    run_id: str
    method: str
    seed: int
    config_hash: str
    git_sha: str
    versions: str  # JSON
    config: str  # JSON
    overrides: str  # JSON list of the job's command-line overrides

    @classmethod
    def collect(cls, cfg: DictConfig, run_dir: Path, overrides: list[str] | tuple = ()) -> RunInfo:
        config = resolved_config(cfg)
        return cls(
            run_id="/".join(Path(run_dir).resolve().parts[-2:]),
            method=str(config["method"]["name"]),
            seed=int(config["seed"]),
            config_hash=config_hash(config),
            git_sha=git_sha(),
            versions=json.dumps(package_versions(), sort_keys=True),
            config=json.dumps(config, sort_keys=True, default=str),
            overrides=json.dumps(list(overrides)),
        )
