"""VACE, the trained baseline: control latents as diffusers' WanVACEPipeline prepares them, the
checkpoint path through save_pretrained, and method=vace on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kvlock.engine.editor import run_edit
from kvlock.methods import compose_method

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vace_tiny():
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone

    return build_backbone(OmegaConf.load(REPO / "conf" / "model" / "wan_vace_tiny.yaml"))


def save_tiny_vace_pipeline(path):
    """A tiny WanVACEPipeline (real classes, seeded random weights) saved the diffusers way."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    words = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "square", "circle"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32,
                                               num_layers=1, num_heads=2, relative_attention_num_buckets=8)).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 2.0, 0.5, 1.0])
    transformer = WanVACETransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                            in_channels=4, out_channels=4, text_dim=16, freq_dim=32, ffn_dim=32,
                                            num_layers=2, vace_layers=[0, 1], vace_in_channels=2 * 4 + 8 * 8)
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                           scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(path)
    return pipe


def test_saved_vace_pipeline_loads_through_the_config_and_conditions_as_the_pipeline(tmp_path):
    from omegaconf import OmegaConf

    from kvlock.backbones import build_backbone
    from kvlock.backbones.vace import VACEBackbone
    from kvlock.data.sample import EditSample

    pipe = save_tiny_vace_pipeline(tmp_path / "vace-tiny")
    cfg = OmegaConf.load(REPO / "conf" / "model" / "wan2.1_vace_1.3b.yaml")
    cfg.update({"path": str(tmp_path / "vace-tiny"), "device": "cpu", "dtype": "float32",
                "max_sequence_length": 8, "local_files_only": True})
    backbone = build_backbone(cfg)
    assert isinstance(backbone, VACEBackbone)

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((5, 32, 32), bool)
    mask[:, 8:24, 4:20] = True
    backbone.condition_on(EditSample("e", "v", frames, mask, "a red square", "a blue circle", "color_change"))

    video = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, T, H, W)
    mask_video = torch.as_tensor(mask).float()[None, None].expand(1, 3, -1, -1, -1)
    with torch.no_grad():
        ref_latents = pipe.prepare_video_latents(video, mask_video, [[]], device=torch.device("cpu"))
    ref_masks = pipe.prepare_masks(mask_video, [[]])  # [[]]: no reference images, as __call__ passes
    reference = torch.cat([ref_latents, ref_masks], dim=1)
    assert backbone.control.shape == reference.shape == (1, 72, 2, 4, 4)
    torch.testing.assert_close(backbone.control, reference, atol=1e-5, rtol=1e-5)

    z = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    ctx = backbone.encode_prompt(["a blue circle"])
    t = torch.tensor([0.6])
    ref_v = pipe.transformer(z, timestep=t * 1000, encoder_hidden_states=ctx, control_hidden_states=reference,
                             return_dict=False)[0]
    torch.testing.assert_close(backbone.velocity(z, t, ctx), ref_v, atol=1e-5, rtol=1e-5)


def test_vace_runs_from_noise_and_reads_the_blanked_source(vace_tiny, random_clip):
    from dataclasses import replace

    cfg = compose_method("vace", steps=3)
    assert not cfg.needs_inversion and not cfg.needs_source_kv
    out = run_edit(vace_tiny, random_clip, cfg, seed=0)
    assert out.frames.shape == random_clip.frames.shape and out.stats["inversion_nfe"] == 0
    assert out.nfe == 6  # 3 steps x (cond, uncond)
    # The background it is given conditions the result; the blanked edit region's pixels do not
    # reach the inactive latents (only the reactive ones).
    brighter = replace(random_clip, frames=np.where(random_clip.mask[..., None], random_clip.frames,
                                                    255 - random_clip.frames))
    other = run_edit(vace_tiny, brighter, cfg, seed=0)
    assert (other.latents - out.latents).abs().max() > 1e-4
    c = vace_tiny.codec.latent_channels
    vace_tiny.condition_on(random_clip)
    inactive = vace_tiny.control[:, :c]
    inside = replace(random_clip, frames=np.where(random_clip.mask[..., None], 0, random_clip.frames).astype(np.uint8))
    vace_tiny.condition_on(inside)
    torch.testing.assert_close(vace_tiny.control[:, :c], inactive)


def test_vace_rejects_fg_only(vace_tiny, random_clip):
    vace_tiny.condition_on(random_clip)
    z = vace_tiny.encode_video(random_clip.frames)
    with pytest.raises(ValueError, match="fg_only is not supported"):
        vace_tiny.velocity(z, torch.tensor([0.5]), vace_tiny.encode_prompt(["x"]), torch.tensor([0, 1]))


def test_vace_on_a_backbone_without_vace_conditioning_is_a_clear_error(tiny_backbone, random_clip):
    """method=vace on plain Wan would silently sample text-to-video: it is refused."""
    with pytest.raises(ValueError, match="needs a backbone that reads method.conditioning=vace"):
        run_edit(tiny_backbone, random_clip, compose_method("vace", steps=2), seed=0)


def test_paper_table_gains_the_vace_row_from_a_second_multirun_into_its_sweep_dir(tmp_path):
    """The README's two paper_table commands: the method given on the command line replaces the
    experiment's method list, and VACE's job dir sits beside the first run's in one table."""
    from conftest import TINY_RUN, run_module

    sweep = tmp_path / "paper"
    common = ("-m", "experiment=paper_table", *TINY_RUN, "run.limit=1", "sampler.steps=2",
              "logger=csv", "report.plot=false", f"paths.cache_dir={tmp_path / 'cache'}",
              f"hydra.sweep.dir={sweep}")
    for method, model in (("kvlock", "wan_tiny"), ("vace", "wan_vace_tiny")):
        result = run_module("benchmarks.run", *common, f"method={method}", f"model={model}",
                            cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_kvlock", "0_vace"]
    table = (sweep / "report.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert {"KV-Lock", "VACE (trained)"} <= set(rows)
