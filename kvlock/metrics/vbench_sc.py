"""VBench subject_consistency: DINO ViT-B/16 features of consecutive and first frames."""

from __future__ import annotations

from kvlock.metrics.base import (
    TOO_FEW_FRAMES,
    Metric,
    MetricInputs,
    MetricResult,
    MetricSettings,
    frame_mean,
)
from kvlock.metrics.consistency import pair_count, vbench_similarity
from kvlock.metrics.dino_model import DINO, RANDOM_ARCHS, load_subject_model
from kvlock.metrics.registry import register_metric


@register_metric("vbench_sc")
class VBenchSubjectConsistency(Metric):
    """Mean over frames i >= 1 of (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2 with
    DINO ViT-B/16 CLS features of the edited frames. `random_arch` picks the random stand-in
    used only when DINO is not cached and random weights are allowed (recorded in the model)."""

    title = "SC"
    higher_is_better = True
    scale = 1e2

    def __init__(self, settings: MetricSettings, random_arch: str = "vit_b_16"):
        super().__init__(settings)
        if random_arch not in RANDOM_ARCHS:
            raise ValueError(
                f"Unknown random_arch '{random_arch}'. Available: {', '.join(RANDOM_ARCHS)}"
            )
        self.random_arch = random_arch

    @property
    def variant(self) -> str:
        return DINO

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        model = load_subject_model(self.random_arch, batch_size=s.batch_size, **s.loader_kwargs)
        if inputs.num_frames < 2:
            return MetricResult.not_computed(TOO_FEW_FRAMES, **model.loaded.provenance)
        return frame_mean(
            vbench_similarity(model.encode_frames(inputs.edited)),
            TOO_FEW_FRAMES,
            flags=pair_count(self.name, inputs.num_frames),
            **model.loaded.provenance,
        )
