"""The KV controller: per-forward state that the self-attention processors consult.

Wan's blocks do not forward `attention_kwargs`, so everything a processor needs for one forward
(which batch rows are source or target, which tokens are cached, α per token, the attention
bias) lives here, set by the editor before each transformer call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvlock.engine.kv_store import KVStore


@dataclass(frozen=True)
class Row:
    """One batch row of a forward: role 'source' or 'target', CFG branch 'cond' or 'uncond'."""

    role: str
    branch: str


@dataclass(frozen=True)
class RowMasks:
    """Attention masks that differ between groups of batch rows: ((rows, mask or None), ...),
    each mask broadcastable over its rows; the processor attends group by group."""

    groups: tuple[tuple[slice, torch.Tensor | None], ...]


class KVController:
    """Decides, for each self-attention call, what K/V the queries see.

    Modes: "plain" (stock attention), "capture" (store K/V of `kv_tokens` per row into `store`),
    "edit" (target rows fuse the source K/V of `kv_tokens`: K = K_new + α·(K_src − K_new), with the
    source from `store` or from the paired source row of the same batch).
    `separate_fg_bg` (KV-Edit AM) applies to the source pass: every row in "plain" / "capture"
    (the inversion), the source rows in "edit" (the forward-noised source).
    """

    def __init__(self, fg_tokens: torch.Tensor):
        """fg_tokens: (N,) bool, True = foreground (edit-region) token."""
        self.fg = fg_tokens
        self.bg_index = torch.nonzero(~fg_tokens).flatten()
        self.fg_index = torch.nonzero(fg_tokens).flatten()
        self.mode = "plain"
        self.rows: list[Row] = []
        self.step = 0
        self.store: KVStore | None = None
        self.kv_index: torch.Tensor = self.bg_index
        self.alpha: torch.Tensor | None = None  # (n_kv,) fusion weight per cached token
        self.source_row_of: dict[int, int] = {}  # target row -> source row (noised provider)
        self.store_branch_of: dict[int, str] = {}  # target row -> branch key in the store
        self.query_index: torch.Tensor | None = None  # fg_only: tokens that run as queries
        self.separate_fg_bg = False  # KV-Edit attention mask in the source pass
        self.bg_logit_bias = 0.0  # KV-Edit attention scale

    def set_plain(self) -> None:
        self.mode, self.query_index, self.separate_fg_bg, self.bg_logit_bias = "plain", None, False, 0.0

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """q, k, v: (B, n, heads, head_dim) post-RoPE. -> (k, v, attn_mask or None)."""
        if self.mode == "capture":
            for row, spec in enumerate(self.rows):
                self.store.put(self.step, layer, spec.branch, k[row, self.kv_index], v[row, self.kv_index])
            return k, v, self._separation_mask(q) if self.separate_fg_bg else None
        if self.mode == "edit":
            if self.query_index is not None:
                return self._fg_only_kv(layer, k, v)
            k, v = self._fuse(layer, k, v)
            bias = self._bg_bias(k, self.bg_index)
            if self.separate_fg_bg and self.source_row_of:
                return k, v, self._source_rows_separated(q, bias)
            return k, v, bias
        return k, v, self._separation_mask(q) if self.separate_fg_bg else None

    def _source_kv(self, layer: int, row: int, k, v):
        if row in self.source_row_of:
            src = self.source_row_of[row]
            return k[src, self.kv_index], v[src, self.kv_index]
        return self.store.get(self.step, layer, self.store_branch_of[row], k.device, k.dtype)

    def _fuse(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        k, v = k.clone(), v.clone()
        a = self.alpha.to(k.dtype)[:, None, None]
        for row, spec in enumerate(self.rows):
            if spec.role != "target":
                continue
            k_src, v_src = self._source_kv(layer, row, k, v)
            k_new, v_new = k[row, self.kv_index], v[row, self.kv_index]
            k[row, self.kv_index] = k_new + a * (k_src - k_new)
            v[row, self.kv_index] = v_new + a * (v_src - v_new)
        return k, v

    def _fg_only_kv(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Queries are fg tokens only; keys/values = [cached bg ; new fg], written once into one
        (B, n_bg + n_fg, heads, head_dim) buffer (no per-row concatenation then stacking)."""
        n_bg = len(self.bg_index)
        shape = (k.shape[0], n_bg + k.shape[1], *k.shape[2:])
        k_all, v_all = k.new_empty(shape), v.new_empty(shape)
        for row in range(k.shape[0]):
            k_bg, v_bg = self.store.get(self.step, layer, self.store_branch_of[row], k.device, k.dtype)
            k_all[row, :n_bg], v_all[row, :n_bg] = k_bg, v_bg
        k_all[:, n_bg:], v_all[:, n_bg:] = k, v
        return k_all, v_all, self._bg_bias(k_all, torch.arange(n_bg, device=k.device))

    def _bg_bias(self, k: torch.Tensor, bg_columns: torch.Tensor):
        """Additive logit bias (B, 1, 1, n_keys): +s on background keys of target rows."""
        if not self.bg_logit_bias:
            return None
        bias = torch.zeros(k.shape[0], 1, 1, k.shape[1], device=k.device, dtype=k.dtype)
        for row, spec in enumerate(self.rows):
            if spec.role == "target":
                bias[row, 0, 0, bg_columns] = self.bg_logit_bias
        return bias

    def _source_rows_separated(self, q: torch.Tensor, target_bias: torch.Tensor | None) -> RowMasks:
        """Target rows keep their bias; the forward-noised source rows attend fg↔fg and bg↔bg only,
        as KV-Edit's inversion-free edit runs its source pass (Xilluill/KV-Edit flux/sampling.py
        `denoise_kv_inf`: the source forward runs with info['inverse'] = True, where
        flux/modules/layers.py `DoubleStreamBlock_kv` / `SingleStreamBlock_kv` apply
        info['attention_mask'], built by models/kv_edit.py `Flux_kv_edit_inf.forward` under
        attn_mask)."""
        first_source = min(self.source_row_of.values())
        if any(spec.role != "source" for spec in self.rows[first_source:]):
            raise RuntimeError("source rows must follow the target rows in the batch")
        targets, sources = slice(0, first_source), slice(first_source, len(self.rows))
        bias = None if target_bias is None else target_bias[targets]
        return RowMasks(((targets, bias), (sources, self._separation_mask(q))))

    def _separation_mask(self, q: torch.Tensor) -> torch.Tensor:
        """(1, 1, N, N) bool: fg queries see fg keys only, bg queries bg keys only."""
        fg = self.fg.to(q.device)
        return (fg[:, None] == fg[None, :])[None, None]
