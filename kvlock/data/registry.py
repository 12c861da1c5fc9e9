"""Dataset registry: `iter_dataset(cfg)` picks the loader that `cfg.name` names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from omegaconf import DictConfig, OmegaConf

from kvlock.data.davis import iter_davis
from kvlock.data.errors import DataError, FailedItem
from kvlock.data.five_bench import iter_five_bench
from kvlock.data.manifest import iter_manifest
from kvlock.data.pie_bench import iter_pie_bench
from kvlock.data.prepare import PrepareConfig, SupportsFrameRules, prepare_sample
from kvlock.data.sample import EditSample
from kvlock.data.synthetic import iter_synthetic_edits
from kvlock.data.vace_benchmark import iter_vace_benchmark

# name -> (loader, whether it takes the prepare block's mask_threshold)
DATASETS: dict[str, tuple[Callable[..., Iterator], bool]] = {
    "synthetic": (iter_synthetic_edits, False),
    "manifest": (iter_manifest, True),
    "davis": (iter_davis, True),
    "five_bench": (iter_five_bench, True),
    "pie_bench": (iter_pie_bench, False),
    "vace_benchmark": (iter_vace_benchmark, True),
}


def iter_dataset(
    cfg: Mapping, rules: SupportsFrameRules | None = None
) -> Iterator[EditSample | FailedItem]:
    """Lazily yield the edits of the dataset `cfg` describes (a dict or DictConfig).

    cfg: `name` (a key of DATASETS), the loader's own options (conf/dataset/<name>.yaml)
    and a `prepare:` block. With `rules` (the backbone's FrameRules) every sample is also passed
    through prepare_sample. Config mistakes raise ValueError here, at the call; a bad sample
    becomes a FailedItem and iteration goes on.
    """
    options = _plain(cfg)
    name = options.pop("name", None)
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset '{name}'. Available: {', '.join(sorted(DATASETS))}")
    prepare = PrepareConfig.from_mapping(options.pop("prepare", None))
    missing = sorted(k for k, v in options.items() if v == "???")
    if missing:
        raise ValueError(f"dataset '{name}' needs {', '.join(f'dataset.{k}=...' for k in missing)}")
    loader, takes_threshold = DATASETS[name]
    if takes_threshold:
        options["mask_threshold"] = prepare.mask_threshold
    try:
        items = loader(**options)  # binds the options now; the loader runs lazily
    except TypeError as err:
        raise ValueError(f"Bad option for dataset '{name}': {err}") from err
    return items if rules is None else _prepared(items, rules, prepare)


def _prepared(items: Iterator, rules: SupportsFrameRules, prepare: PrepareConfig) -> Iterator:
    for item in items:
        if isinstance(item, FailedItem):
            yield item
            continue
        try:
            yield prepare_sample(item, rules, prepare)
        except DataError as err:
            yield FailedItem(item.edit_id, item.video_id, item.edit_type, str(err))


def _plain(cfg: Mapping) -> dict:
    """A plain dict of the config (interpolations resolved; '???' kept for a clear error)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return dict(cfg)
