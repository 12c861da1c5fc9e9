"""Wan backbones over the real diffusers classes: the embedded tiny default and real checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from kvlock.backbones.base import VideoBackbone
from kvlock.backbones.codec import SpaceToDepthCodec, WanVAECodec
from kvlock.backbones.prediction import PREDICTIONS
from kvlock.backbones.runtime import DTYPES, resolve_device
from kvlock.backbones.text import (
    ByteTokenizer,
    FileFreeTokenizer,
    HFTokenizer,
    PromptEncoder,
    WordTokenizer,
)
from kvlock.backbones.wan_attention import install_kv_control, remove_kv_control
from kvlock.backbones.wan_forward import wan_forward

log = logging.getLogger(__name__)


@dataclass
class WanBackbone(VideoBackbone):
    """A Wan transformer with a codec and a prompt encoder; self-attention sees video tokens only."""

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(self.transformer.config.patch_size)

    @property
    def num_layers(self) -> int:
        return len(self.transformer.blocks)

    @property
    def inner_dim(self) -> int:
        cfg = self.transformer.config
        return cfg.num_attention_heads * cfg.attention_head_dim

    @property
    def ffn_dim(self) -> int:
        return self.transformer.config.ffn_dim

    @torch.no_grad()
    def velocity(self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                 token_index: torch.Tensor | None = None) -> torch.Tensor:
        """Transformer forward (`wan_forward`, which also turns a `sample` prediction into a
        velocity) over all video tokens or only `token_index` (fg-only; others get velocity 0).
        latents (B, C, F, h, w), t (B,) in [0, 1], context (B, L, D) -> (B, C, F, h, w) float32."""
        return wan_forward(self.transformer, latents, t, context, token_index, self.prediction)

    @torch.no_grad()
    def velocity_in_box(self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                        token_index: torch.Tensor, box: tuple[slice, slice, slice]) -> torch.Tensor:
        """`velocity` over `token_index`, written straight into the latent box (no whole-latent
        zero fill): (B, C, *box sizes)."""
        return wan_forward(self.transformer, latents, t, context, token_index, self.prediction, box)

    def install_kv_control(self, controller) -> None:
        """Route every self-attention's post-RoPE K/V (all tokens are video tokens) through
        `controller(layer, q, k, v) -> (k, v, attn_mask)`."""
        install_kv_control(self.transformer, controller)

    def remove_kv_control(self) -> None:
        remove_kv_control(self.transformer)

def tiny_transformer_config(cfg: dict, in_channels: int, text_dim: int) -> dict:
    return {
        "patch_size": tuple(cfg.get("patch_size", (1, 2, 2))),
        "num_attention_heads": cfg["num_attention_heads"],
        "attention_head_dim": cfg["attention_head_dim"],
        "in_channels": in_channels,
        "out_channels": in_channels,
        "text_dim": text_dim,
        "freq_dim": cfg["freq_dim"],
        "ffn_dim": cfg["ffn_dim"],
        "num_layers": cfg["num_layers"],
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": cfg.get("rope_max_seq_len", 1024),
    }


def build_tokenizer(cfg: dict) -> FileFreeTokenizer:
    """`text.vocabulary` (a word list) selects the word tokenizer; without it, bytes."""
    vocabulary = cfg.get("vocabulary")
    return WordTokenizer(vocabulary) if vocabulary else ByteTokenizer()


def build_tiny_text_encoder(cfg: dict, tokenizer: FileFreeTokenizer):
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=tokenizer.vocab_size,
        d_model=cfg["d_model"],
        d_kv=cfg["d_model"] // cfg["num_heads"],
        d_ff=cfg["d_ff"],
        num_layers=cfg["num_layers"],
        num_heads=cfg["num_heads"],
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_id,
        eos_token_id=tokenizer.eos_id,
    )
    if cfg.get("absolute_positions", False):
        from kvlock.backbones.umt5_positions import UMT5EncoderWithPositions

        return UMT5EncoderWithPositions(config, cfg["max_length"]).eval()
    return UMT5EncoderModel(config).eval()


def cast_keeping_fp32(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast `model`'s parameters and buffers to `dtype` in place, except those inside the modules
    its class keeps in float32 (`_keep_in_fp32_modules`), as diffusers' `from_pretrained(...,
    torch_dtype=dtype)` does (diffusers/models/model_loading_utils.py, load_model_dict_into_meta:
    a name component in that list keeps float32). `model.to(dtype)` would cast those too, and
    diffusers warns about it."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not keep & set(name.split(".")):
            tensor.data = tensor.data.to(dtype)
    return model


def build_wan_tiny(cfg: dict) -> WanBackbone:
    """Embedded default: real WanTransformer3DModel at a tiny size, seeded random (or given) weights,
    the lossless space-to-depth codec and a byte- (or word-) level tokenizer + tiny UMT5 encoder."""
    device, dtype = resolve_device(cfg.get("device", "cpu")), DTYPES[cfg.get("dtype", "float32")]
    prediction = cfg.get("prediction", "velocity")
    if prediction not in PREDICTIONS:
        raise ValueError(f"model.prediction='{prediction}' is unknown. Available: {', '.join(PREDICTIONS)}")
    torch.manual_seed(int(cfg.get("seed", 0)))
    codec = SpaceToDepthCodec(**cfg["codec"])
    tokenizer = build_tokenizer(cfg["text"])
    text_encoder = build_tiny_text_encoder(cfg["text"], tokenizer)
    transformer = WanTransformer3DModel(
        **tiny_transformer_config(cfg["transformer"], codec.latent_channels, cfg["text"]["d_model"])
    )
    weights = cfg.get("weights")
    if weights:
        modules = {"transformer": transformer, "text_encoder": text_encoder}
        load_weights(resolve_repo_path(weights), **modules)
    return WanBackbone(
        name=cfg["name"],
        transformer=cast_keeping_fp32(transformer, dtype).to(device).eval(),
        codec=codec,
        prompt_encoder=PromptEncoder(tokenizer, text_encoder.to(device), cfg["text"]["max_length"]),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        prediction=prediction,
        info={"weights": str(weights) if weights else "seeded-random", "seed": int(cfg.get("seed", 0)),
              "prediction": prediction},
    )


REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_repo_path(path: str | Path) -> Path:
    """Relative paths are taken from the repository root, so configs work from any cwd."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def load_weights(path: Path, allow_missing: bool = False, **modules: torch.nn.Module) -> list[str]:
    """Load `<module>.<param>` tensors from one safetensors file into the named modules.

    A module with no key in the file keeps its seeded weights; one with keys must match exactly,
    except that with `allow_missing` (warm-starting a changed architecture) parameters the file
    lacks, or holds in another shape, keep their initialisation. -> the names of those parameters.
    """
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    state = load_file(str(path))
    missing = []
    for prefix, module in modules.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if sub:
            if allow_missing:
                own = module.state_dict()
                sub = {k: v for k, v in sub.items() if k not in own or own[k].shape == v.shape}
            result = module.load_state_dict(sub, strict=not allow_missing)
            if result.unexpected_keys:
                raise RuntimeError(f"{path}: keys {result.unexpected_keys} are not in the {prefix}")
            missing += [f"{prefix}.{k}" for k in result.missing_keys]
    return missing


def load_wan_pretrained(cfg: dict, transformer_class=WanTransformer3DModel,
                        backbone_class=WanBackbone) -> WanBackbone:
    """Real checkpoints (hub id or local diffusers folder) through `from_pretrained`, revision
    pinnable. `transformer_class`/`backbone_class`: a Wan variant (VACE) with the same parts."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler
    from transformers import AutoTokenizer, UMT5EncoderModel

    path, revision = str(cfg["path"]), cfg.get("revision")
    device, dtype = resolve_device(cfg.get("device", "auto")), DTYPES[cfg.get("dtype", "bfloat16")]
    vae_dtype = DTYPES[cfg.get("vae_dtype", "float32")]
    common = {"revision": revision, "local_files_only": bool(cfg.get("local_files_only", False))}
    try:
        transformer = transformer_class.from_pretrained(
            path, subfolder="transformer", torch_dtype=dtype, **common
        )
        vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=vae_dtype, **common)
        text_encoder = UMT5EncoderModel.from_pretrained(
            path, subfolder="text_encoder", torch_dtype=dtype, **common
        )
        tokenizer = AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **common)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler", **common)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0]
        raise RuntimeError(f"cannot load Wan checkpoint '{path}' (revision {revision}): {first_line}") from err
    log.info("loaded %s; scheduler config: %s", path, dict(scheduler.config))
    return backbone_class(
        name=cfg["name"],
        transformer=transformer.to(device).eval(),
        codec=WanVAECodec(vae.to(device).eval()).to(device),
        prompt_encoder=PromptEncoder(
            HFTokenizer(tokenizer), text_encoder.to(device).eval(), int(cfg.get("max_sequence_length", 512))
        ),
        device=device,
        dtype=dtype,
        negative_prompt=cfg.get("negative_prompt", ""),
        info={"path": path, "revision": revision, "scheduler": dict(scheduler.config)},
    )
