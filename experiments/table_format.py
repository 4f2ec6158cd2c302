"""Table numbers and text: the one mean ± std, cell formatting, Markdown and LaTeX.

Every "mean ± std" of a table is computed by ``mean_std`` (or ``mean_std_by``,
the same reductions per group in one pass) and written by ``format_mean_std``,
so all tables, and the command line's demo table, agree on what the spread is:
the sample standard deviation (ddof 1) over the cases that have a value.

Markdown and LaTeX are rendered here (``format_markdown``, ``format_latex``):
pandas' own renderers need ``tabulate`` (not installed) and ``jinja2`` (only
an indirect dependency).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

MISSING = "-"
STYLES: tuple[str, ...] = ("plain", "markdown", "latex")
_PLUS_MINUS = {"plain": "±", "markdown": "±", "latex": "$\\pm$"}


# ------------------------------------------------------------ mean ± std
def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of ``values``, NaNs left out.

    The one definition of the tables' "mean ± std": NaN marks a case without a
    value (e.g. HD95 with an empty prediction) and is ignored, not counted. With
    fewer than two values left the std is NaN (a single case has no spread); with
    none the mean is NaN too. Infinities are kept, giving an infinite mean and a
    NaN std, rather than being hidden. Computed by the same pandas reductions as
    ``mean_std_by``, so a single call and a table's cell agree to the last bit.

    Example:
        >>> mean_std([1.0, 2.0, 3.0, 4.0])  # std = sqrt(5 / 3)
        (2.5, 1.2909944487358056)

    Raises:
        ValueError: ``values`` is not one-dimensional.
    """
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return math.nan, math.nan
    row = mean_std_by(pd.DataFrame({"group": 0, "value": array}), ["group"]).iloc[0]
    return float(row["mean"]), float(row["std"])


def mean_std_by(frame: pd.DataFrame, keys: Sequence[str], column: str = "value") -> pd.DataFrame:
    """``mean_std`` of ``column`` for each group of ``keys``, in one vectorised pass.

    Returns:
        Columns ``*keys`` (groups in order of first appearance), ``n`` (values
        that are not NaN), ``mean`` and ``std`` (ddof 1, NaN for ``n`` < 2).
    """
    grouped = frame.groupby(list(keys), sort=False)[column]
    stats = pd.DataFrame({"n": grouped.count(), "mean": grouped.mean(), "std": grouped.std(ddof=1)})
    return stats.reset_index()


def format_mean_std(
    mean: float, std: float, *, decimals: int = 3, style: str = "plain", bold: bool = False
) -> str:
    """The table cell ``"0.912 ± 0.013"`` for a ``mean_std`` result.

    Args:
        mean: the mean; NaN gives ``MISSING`` (``-``).
        std: the standard deviation; NaN (a single case) shows the mean alone.
        decimals: digits after the point, for both numbers.
        style: ``plain``, ``markdown`` (bold as ``**...**``) or ``latex``
            (``$\\pm$``, bold as ``\\textbf{...}``).
        bold: mark the cell, e.g. as the best of its column.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    if math.isnan(mean):
        return MISSING
    text = f"{mean:.{decimals}f}"
    if not math.isnan(std):
        text += f" {_PLUS_MINUS[style]} {std:.{decimals}f}"
    if bold and style == "markdown":
        return f"**{text}**"
    if bold and style == "latex":
        return f"\\textbf{{{text}}}"
    return text


def format_count(value: float) -> str:
    """``1234567`` -> ``1.23 M``: counts as people read them in a table."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


# -------------------------------------------------------------- rendering
def format_markdown(df: pd.DataFrame, *, index: bool = True, decimals: int = 3) -> str:
    """A pipe table (GitHub Markdown) of ``df``, without ``tabulate``.

    The index is shown as first column(s) unless ``index`` is false or it is an
    unnamed ``RangeIndex``; floats get ``decimals`` digits, NaN shows as ``-``,
    ``|`` in a cell is escaped. Index columns (or the first column) are
    left-aligned, the others right-aligned.
    """
    frame = df
    if index and not (isinstance(df.index, pd.RangeIndex) and df.index.name is None):
        frame = df.reset_index()
    left = max(1, frame.shape[1] - df.shape[1])
    header = [_label(c) for c in frame.columns]
    body = [[_markdown_cell(v, decimals) for v in row] for row in frame.itertuples(index=False)]
    align = [":---" if i < left else "---:" for i in range(len(header))]
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def _label(column: object) -> str:
    """A column label as text; a MultiIndex column ``(a, b)`` reads ``a / b``."""
    return " / ".join(map(str, column)) if isinstance(column, tuple) else str(column)


def _markdown_cell(value: object, decimals: int) -> str:
    """A Markdown cell: floats to ``decimals`` digits, missing values as ``MISSING``."""
    if isinstance(value, float | np.floating):
        text = MISSING if math.isnan(value) else f"{value:.{decimals}f}"
    else:
        text = MISSING if value is None or value is pd.NA else str(value)
    return text.replace("|", "\\|")


def format_latex(cells: pd.DataFrame, *, caption: str, label: str | None = None) -> str:
    """A booktabs ``table`` of string cells that are already LaTeX.

    Column and index labels are escaped here; the cells are not, so they may
    hold ``\\textbf`` or ``$\\pm$``. Needs ``\\usepackage{booktabs}``.
    """
    frame = cells
    if not (isinstance(cells.index, pd.RangeIndex) and cells.index.name is None):
        frame = cells.reset_index()
    header = " & ".join(latex_escape(_label(c)) for c in frame.columns)
    index_columns = frame.shape[1] - cells.shape[1]
    body = [
        " & ".join(latex_escape(str(v)) if i < index_columns else str(v) for i, v in enumerate(r))
        for r in frame.itertuples(index=False)
    ]
    lines = [
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        *([f"\\label{{{label}}}"] if label else []),
        f"\\begin{{tabular}}{{{'l' * index_columns}{'r' * cells.shape[1]}}}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
        *(row + " \\\\" for row in body),
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)
