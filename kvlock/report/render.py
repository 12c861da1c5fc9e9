"""Render a built Table as markdown, LaTeX (booktabs) or CSV."""

from __future__ import annotations

import io
from itertools import groupby

import pandas as pd
from tabulate import tabulate

from kvlock.report.tables import Table

FORMATS = ("markdown", "latex", "csv")


def render(table: Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format '{fmt}'. Available: {', '.join(FORMATS)}")
    return {"markdown": markdown, "latex": latex, "csv": csv}[fmt](table)


def _groups(table: Table) -> list[tuple[str, int]]:
    return [(g, len(list(cols))) for g, cols in groupby(c.group for c in table.columns)]


def markdown(table: Table) -> str:
    headers = ["Method", "Edits", *(f"{c.header} {a}".strip() for c, a in zip(table.columns, table.arrows))]
    body = [[name, edits, *(_md_cell(c) for c in cells)] for name, edits, cells in table.rows]
    groups = " · ".join(f"*{g}*: {', '.join(c.header for c in table.columns if c.group == g)}"
                        for g, _ in _groups(table) if g)
    parts = [f"**{table.title}**", "", groups, "", tabulate(body, headers, tablefmt="pipe",
                                                            disable_numparse=True)]
    if table.notes:
        parts += ["", *(f"[{i}] {text}" for i, text in enumerate(table.notes, 1))]
    parts += ["", "Best per column in bold (reference rows excluded); n/c = not computed."]
    return "\n".join(parts) + "\n"


def _md_cell(cell) -> str:
    if cell.note:
        return f"n/c [{cell.note}]"
    return f"**{cell.text}**" if cell.best else cell.text


_MATH = {"↑": r"\uparrow", "↓": r"\downarrow", "α": r"\alpha", "ω": r"\omega", "σ": r"\sigma",
         "×": r"\times", **{sup: f"^{d}" for d, sup in zip("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")}}
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                  **{ch: rf"\ensuremath{{{m}}}" for ch, m in _MATH.items()}}


def tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def latex(table: Table) -> str:
    n = len(table.columns)
    lines = [r"\begin{tabular}{l" + "c" * (n + 1) + "}", r"\toprule"]
    groups, rules, start = [" ", " "], [], 3
    for group, width in _groups(table):
        groups.append(rf"\multicolumn{{{width}}}{{c}}{{{tex(group)}}}" if width > 1 else tex(group))
        if group:
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    lines += [" & ".join(groups) + r" \\", " ".join(rules)]
    headers = ["Method", "Edits", *(tex(f"{c.header} {a}".strip()) for c, a in zip(table.columns, table.arrows))]
    lines += [" & ".join(headers) + r" \\", r"\midrule"]
    for name, edits, cells in table.rows:
        lines.append(" & ".join([tex(name), edits, *(_tex_cell(c) for c in cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [rf"$^{{{i}}}$ {tex(text)}" for i, text in enumerate(table.notes, 1)]
    return "\n".join([f"% {table.title}", *lines, *(f"\\\\ {{\\footnotesize {n}}}" for n in notes)]) + "\n"


def _tex_cell(cell) -> str:
    if cell.note:
        return rf"n/c$^{{{cell.note}}}$"
    return rf"\textbf{{{cell.text}}}" if cell.best else cell.text


def csv(table: Table) -> str:
    """Numbers only (scaled as in the table, empty = not computed); no marks or notes."""
    records = [{"method": name, "edits": edits, **{c.header: cell.value for c, cell in zip(table.columns, cells)}}
               for name, edits, cells in table.rows]
    out = io.StringIO()
    pd.DataFrame(records).to_csv(out, index=False)
    return out.getvalue()
