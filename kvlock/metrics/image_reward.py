"""ImageReward v1.0 (THUDM/ImageReward): BLIP image-text encoder + MLP reward head.

Reference: THUDM/ImageReward ImageReward/ImageReward.py (`ImageReward.score(prompt, images)`),
loaded by `ImageReward.load(path, med_config=...)`; raw reward per image; video: mean over every
`frame_stride`-th edited frame. The `image-reward` package pins timm 0.6.13, which conflicts with
the core stack, so it lives in the optional `rewards` extra; without it the column is not
computed and names the install command. There is no random stand-in (BLIP needs its tokenizer
files).
"""

from __future__ import annotations

import functools

from PIL import Image

from kvlock.metrics.base import Metric, MetricInputs, MetricResult
from kvlock.metrics.frames import strided
from kvlock.metrics.registry import register_metric
from kvlock.metrics.weights import WeightsUnavailable, fetch_hint, model_file

INSTALL = "pip install -e '.[rewards]' (make rewards)"


@functools.lru_cache(maxsize=1)
def load_image_reward(checkpoint: str, med_config: str, device: str):
    import ImageReward

    return ImageReward.load(checkpoint, device=device, med_config=med_config)


@register_metric("image_reward")
class ImageRewardScore(Metric):
    """Mean ImageReward of the edited frames with the target prompt."""

    title = "IR"
    higher_is_better = True

    @property
    def variant(self) -> str:
        return "v1.0"

    def _compute(self, inputs: MetricInputs) -> MetricResult:
        s = self.settings
        try:
            import ImageReward  # noqa: F401
        except ImportError:
            return MetricResult.not_computed(
                f"not computed: the image-reward package is not installed; run {INSTALL}"
            )
        offline = not s.download_allowed
        checkpoint = model_file("image-reward", s.weights_dir, offline)
        config = model_file("image-reward-config", s.weights_dir, offline)
        if checkpoint is None or config is None:
            raise WeightsUnavailable("ImageReward v1.0", fetch_hint("image-reward") +
                                     " image-reward-config")
        model = load_image_reward(str(checkpoint), str(config), str(s.torch_device))
        frames = inputs.edited[strided(inputs.num_frames, s.frame_stride)]
        prompt = s.prompt(inputs.target_prompt)
        rewards = [float(model.score(prompt, [Image.fromarray(f)])) for f in frames]
        return MetricResult(sum(rewards) / len(rewards), rewards, model="ImageReward v1.0")
