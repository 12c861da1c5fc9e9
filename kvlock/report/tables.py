"""Table specs in the papers' layouts and the build step: aggregated rows → cells with the best
value per column marked and "n/c" cells footnoted with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

WEIGHTS = "not computed: model weights unavailable"


@dataclass(frozen=True)
class Column:
    """One table column: `metric` names an aggregate column (None: never computed here, `reason`
    says why); `average_of` lists headers averaged instead (the paper's VBench Avg)."""

    header: str
    metric: str | None = None
    scale: float = 1.0
    digits: int = 2
    group: str = ""
    reason: str = WEIGHTS
    average_of: tuple[str, ...] = ()
    higher_is_better: bool | None = None  # None: from the metric's info


@dataclass(frozen=True)
class TableSpec:
    """`methods`: row order and display names; `reference`: rows shown but never marked best."""

    title: str
    columns: tuple[Column, ...]
    methods: dict[str, str] = field(default_factory=dict)
    reference: frozenset[str] = frozenset({"reconstruct"})
    by_edit_type: bool = False  # rows per (config, edit type) + the mean over types, in that order


TIME = Column("s/it", "sec_per_step", digits=3, group="Time", higher_is_better=False)
VBENCH = "VBench (%)"
PRESERVATION = "Masked-region preservation"
KVLOCK_COLUMNS = (
    Column("SC", "vbench_sc", 100, group=VBENCH, higher_is_better=True),
    Column("BC", "vbench_bc", 100, group=VBENCH, higher_is_better=True),
    Column("MS", "vbench_ms", 100, group=VBENCH, higher_is_better=True),
    Column("AQ", "vbench_aq", 100, group=VBENCH, higher_is_better=True),
    Column("IQ", "vbench_iq", 100, group=VBENCH, higher_is_better=True),
    Column("Avg", group=VBENCH, average_of=("SC", "BC", "MS", "AQ", "IQ"), higher_is_better=True),
    Column("SSIM", "bg_ssim", 1, 3, group="Background", higher_is_better=True),
    Column("PSNR", "bg_psnr", 1, 2, group="Background", higher_is_better=True),
    TIME,
)
MAIN_METHODS = {
    "kvlock": "KV-Lock",
    "fixed_fusion": "Fixed fusion α=0.5 (ProEdit-like)",
    "cfg_zero_star": "CFG-Zero*",
    "apg": "APG",
    "vace": "VACE (trained)",
    "fixed_cfg": "KV-Lock KV, fixed CFG",
    "full_injection": "Full injection",
    "hard_lock": "Hard lock (KV-Edit)",
    "reconstruct": "Reconstruction (floor)",
}
ABLATION_METHODS = {
    "kvlock_abl_var_kv_only": "Variance KV only",
    "kvlock_abl_omega_only": "ω only",
    "kvlock_abl_sstar_only": "s* only",
    "kvlock_abl_sstar_omega": "s* + ω",
    "kvlock_abl_fixed_alpha": "Fixed α 0.5",
    "kvlock_abl_global_sigma": "Global σ²",
    "kvlock_abl_guidance_fg": "ω on fg only",
    "kvlock": "Full (KV-Lock)",
}
TABLES = {
    "kvlock_main": TableSpec("KV-Lock main table", KVLOCK_COLUMNS, MAIN_METHODS),
    "kvlock_ablation": TableSpec("KV-Lock ablation", KVLOCK_COLUMNS, ABLATION_METHODS),
    "kvedit": TableSpec(
        "KV-Edit table",
        (
            Column("HPS", "hpsv2", 100, group="Image quality", higher_is_better=True),
            Column("AS", "laion_aes", group="Image quality", higher_is_better=True),
            Column("PSNR", "bg_psnr", group=PRESERVATION, higher_is_better=True),
            Column("LPIPS×10³", "bg_lpips", 1e3, group=PRESERVATION, higher_is_better=False),
            Column("MSE×10⁴", "bg_mse", 1e4, group=PRESERVATION, higher_is_better=False),
            Column("CLIP sim", "clip_text", group="Text align", higher_is_better=True),
            Column("IR", "image_reward", group="Text align", higher_is_better=True),
        ),
        {"hard_lock": "Hard lock (KV-Edit)", "reconstruct": "Codec reconstruction (floor)"},
    ),
}


# FiVE-Bench's conventional-metric table (FiVE-Bench README "Conventional Metrics";
# evaluation/evaluate.py scales LPIPS x10^3, MSE x10^4, SSIM x10^2), per edit type and overall.
FIVE_BG = "Background preservation"
TABLES["five"] = TableSpec(
    "FiVE-Bench table",
    (
        Column("PSNR", "bg_psnr", group=FIVE_BG, higher_is_better=True),
        Column("LPIPS×10³", "bg_lpips", 1e3, group=FIVE_BG, higher_is_better=False),
        Column("MSE×10⁴", "bg_mse", 1e4, group=FIVE_BG, higher_is_better=False),
        Column("SSIM×10²", "bg_ssim", 1e2, group=FIVE_BG, higher_is_better=True),
        Column("Whole", "clip_text", group="CLIP similarity", higher_is_better=True),
        Column("Edit part", "clip_text_edit", group="CLIP similarity", higher_is_better=True),
        Column("FiVE-Acc", group="VLM", higher_is_better=True,
               reason="out of scope: FiVE-Acc asks a vision-language model questions about the video"),
    ),
    MAIN_METHODS,
    by_edit_type=True,
)


def auto_spec(metric_info: dict[str, dict], present: list[str]) -> TableSpec:
    """Every metric column present, headed by its label (× its table scale), plus time."""
    columns = []
    for name in present:
        info = metric_info.get(name, {})
        scale = float(info.get("scale") or 1.0)
        header = f"{info.get('label') or name}{scale_text(scale)}"
        columns.append(Column(header, name, scale, 3, group="Metrics"))
    methods = {**MAIN_METHODS, **{m: n for m, n in ABLATION_METHODS.items() if m not in MAIN_METHODS}}
    return TableSpec("All metrics", (*columns, TIME), methods)


def scale_text(scale: float) -> str:
    """' ×10³' for 1000, ' ×0.5' for 0.5, '' for 1."""
    if scale == 1:
        return ""
    power = math.log10(scale)
    if power.is_integer() and power > 0:
        return " ×10" + str(int(power)).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f" ×{scale:g}"


@dataclass
class Cell:
    text: str
    value: float | None = None
    best: bool = False
    note: int | None = None  # footnote number of an n/c cell


@dataclass
class Table:
    title: str
    columns: list[Column]
    arrows: list[str]  # "↑" / "↓" / "" per column
    rows: list[tuple[str, str, list[Cell]]]  # (display name, "ok/total", cells)
    notes: list[str]  # footnote texts, numbered from 1


def build_table(agg: pd.DataFrame, spec: TableSpec, metric_info: dict, reasons: dict[str, str]) -> Table:
    """Cells for `spec` from `aggregate()` output; `reasons` = why metrics were not computed."""
    order = {m: i for i, m in enumerate(spec.methods)}
    keys = ["_order"] if spec.by_edit_type else ["_order", "label"]  # by type: keep type order
    agg = agg.assign(_order=agg["method"].map(order).fillna(len(order)))
    agg = agg.sort_values(keys, kind="stable").reset_index(drop=True)
    notes: dict[str, list[str]] = {}
    arrows, columns = [], {}
    for col in spec.columns:
        higher = col.higher_is_better
        if higher is None and col.metric:
            higher = metric_info.get(col.metric, {}).get("higher_is_better")
        arrows.append("" if higher is None else "↑" if higher else "↓")
        columns[col.header] = _column_cells(col, agg, columns, reasons, notes)
        if higher is not None:
            _mark_best([c for c, ref in zip(columns[col.header], agg["method"].isin(spec.reference))
                        if not ref], higher)
    rows = []
    for i, (_, row) in enumerate(agg.iterrows()):
        name = spec.methods.get(row["method"], row["method"])
        name += row["label"][len(row["method"]):]
        rows.append((name, f"{row['n_ok']}/{row['n_total']}", [columns[c.header][i] for c in spec.columns]))
    note_texts = [f"{', '.join(headers)}: {reason}" for reason, headers in notes.items()]
    return Table(spec.title, list(spec.columns), arrows, rows, note_texts)


def _column_cells(col: Column, agg: pd.DataFrame, done: dict, reasons: dict, notes: dict) -> list[Cell]:
    def missing(reason: str) -> Cell:
        headers = notes.setdefault(reason, [])
        if col.header not in headers:
            headers.append(col.header)
        return Cell("n/c", note=list(notes).index(reason) + 1)

    if col.average_of:
        lacking = [h for h in col.average_of if any(c.value is None for c in done[h])]
        why = f"not computed: needs all of {', '.join(col.average_of)} ({', '.join(lacking)} missing)"
        cells = []
        for parts in zip(*(done[h] for h in col.average_of)):
            values = [c.value for c in parts]
            if None in values:
                cells.append(missing(why))
            else:
                mean = sum(values) / len(values)
                cells.append(Cell(f"{mean:.{col.digits}f}", mean))
        return cells
    if col.metric is None:
        return [missing(col.reason) for _ in range(len(agg))]
    if col.metric not in agg:
        why = reasons.get(col.metric) or f"not computed: {col.metric} is not in these runs' metric set"
        return [missing(why) for _ in range(len(agg))]
    cells = []
    for value in agg[col.metric]:
        if value is None or not math.isfinite(value):
            cells.append(missing(reasons.get(col.metric, "not computed")))
        else:
            scaled = float(value) * col.scale
            cells.append(Cell(f"{scaled:.{col.digits}f}", scaled))
    return cells


def _mark_best(cells: list[Cell], higher: bool) -> None:
    """Mark every cell whose printed value equals the best one (ties all marked)."""
    valued = [c for c in cells if c.value is not None]
    if len(valued) < 2:
        return
    best = (max if higher else min)(valued, key=lambda c: c.value).text
    for cell in valued:
        cell.best = cell.text == best
