"""Which method of one axis trains most stably: a Friedman test across tasks and seeds.

The report finds that weighting by predicted probability stabilises training
most. ``most_stable`` tests such a claim instead of reading it off a plot: each
block (a task, with the other row axes and the seed fixed) ranks the entries of
one axis (e.g. the weightings) by a stability metric, lower being steadier; a
Friedman test asks whether the entries differ at all, and two-sided Wilcoxon
signed-rank tests, Holm-corrected, compare the steadiest entry with each other
one across the blocks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, wilcoxon

DEFAULT_METRIC = "val_dice_std_last_quarter"


def most_stable(
    stability: pd.DataFrame, axis: str, *, metric: str = DEFAULT_METRIC
) -> tuple[pd.DataFrame, str]:
    """Rank the entries of ``axis`` by ``metric`` across blocks, with the tests.

    Args:
        stability: one row per run: the ``axis`` column, the block columns
            (every other column that is not a ``stability/*`` metric or
            ``variant``) and ``stability/<metric>``.
        axis: the column whose entries are compared (``weighting``).
        metric: the stability metric without its prefix; lower is steadier.

    Returns:
        A table, steadiest first: ``axis``, ``mean_rank`` (1 = steadiest in a
        block), ``median`` of the metric and ``p_vs_steadiest`` (Holm-adjusted;
        empty for the steadiest itself), and a sentence naming the steadiest
        entry with the Friedman p-value, or, where every entry ties, saying that none
        is steadier (the table then lists them alphabetically). Blocks missing an entry
        are dropped.
    """
    column = f"stability/{metric}"
    if axis not in stability.columns or column not in stability.columns:
        raise ValueError(f"stability needs columns {axis!r} and {column!r}")
    blocks = [c for c in stability.columns if c not in (axis, "variant", "seed_label")]
    blocks = [c for c in blocks if not str(c).startswith("stability/")]
    wide = stability.pivot_table(index=blocks, columns=axis, values=column, aggfunc="mean")
    wide = wide.dropna()
    if wide.shape[1] < 2 or wide.shape[0] < 2:
        raise ValueError(f"need at least 2 entries of {axis!r} in at least 2 complete blocks")
    ranks = wide.rank(axis=1, method="average")
    order = ranks.mean().sort_values(kind="stable")
    steadiest = order.index[0]
    raw = {entry: _signed_rank_p(wide[steadiest], wide[entry]) for entry in order.index[1:]}
    adjusted = _holm(raw)
    table = pd.DataFrame(
        {
            axis: order.index,
            "mean_rank": order.to_numpy(),
            "median": wide[order.index].median().to_numpy(),
            "p_vs_steadiest": [np.nan, *[adjusted[e] for e in order.index[1:]]],
        }
    )
    if wide.shape[1] >= 3:
        friedman = friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns]).pvalue
        test = f"Friedman test over {len(wide)} blocks: p = {friedman:.3g}"
    else:
        test = f"Wilcoxon test over {len(wide)} blocks: p = {adjusted[order.index[1]]:.3g}"
    if order.nunique() == 1:  # e.g. curves that never left 0: naming one would mislead
        sentence = (
            f"No {axis} is steadier than another by {metric}: all {len(order)} have mean "
            f"rank {order.iloc[0]:.2f} over {len(wide)} blocks."
        )
        return table, sentence
    runner_up = order.index[1]
    verdict = "significantly" if adjusted[runner_up] < 0.05 else "not significantly"
    sentence = (
        f"Steadiest {axis} by {metric}: **{steadiest}** (mean rank {order.iloc[0]:.2f}; "
        f"{test}); {verdict} steadier than the runner-up {runner_up} "
        f"(Holm-adjusted p = {adjusted[runner_up]:.3g})."
    )
    return table, sentence


def _signed_rank_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon p of paired values; 1 when every difference is zero."""
    difference = (a - b).to_numpy()
    if not difference.any():
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples and ties: still a valid p
        return float(wilcoxon(difference).pvalue)


def _holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment, monotone and capped at 1."""
    ordered = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for i, key in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - i) * p_values[key]))
        adjusted[key] = running
    return adjusted
