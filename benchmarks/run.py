"""`python -m benchmarks.run [overrides]`: edit a dataset with one method per Hydra job.

Examples: `python -m benchmarks.run method=hard_lock logger=wandb`,
`python -m benchmarks.run -m experiment=demo`, `python -m benchmarks.run debug=default`.
Re-running into the same `hydra.run.dir` / `hydra.sweep.dir` resumes (done edits are skipped).
"""

from __future__ import annotations

import os
import warnings

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

os.environ.setdefault("WANDB_MODE", "offline")
# conf/hydra/launcher/{joblib,submitit_*}.yaml are presets over the plugins' schemas of the same
# name; Hydra validates them against those schemas and warns that this matching is deprecated.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema", category=UserWarning)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from kvlock.data.errors import DataError
    from kvlock.experiment.runner import run_job

    hydra_cfg = HydraConfig.get()
    try:
        run_job(cfg, hydra_cfg.runtime.output_dir, overrides=list(hydra_cfg.overrides.task))
    except DataError as err:  # the set itself is unusable (e.g. its index file): one line
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
