"""Statistical ranking of variants: pairwise Wilcoxon significance and rank scores.

The rank score of Sugino et al. 2021 (Healthcare 9(8):938): pairwise Wilcoxon
signed-rank tests on per-case values, as in the Medical Segmentation Decathlon,
give each variant a significance score per task, class and metric
(``significance_scores``); its mean over the classes and metrics of a task
group is the rank score (``rank_scores``). Input: the long per-case frame of
``experiments.per_case``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from experiments.per_case import CELL_KEYS, LOWER_IS_BETTER, task_group, validated_results


def significance_scores(
    results: pd.DataFrame,
    *,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Significance score of every variant per task, class and metric.

    Variant A is significantly better than B when a two-sided Wilcoxon
    signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped) on
    their per-case values paired by subject gives p < ``alpha`` and the median
    of the paired differences A - B is in the metric's better direction (above
    zero, or below for ``lower_is_better``). A's significance score is the
    number of variants significantly worse than it.

    Edge cases, none of which raise: a pair with a NaN on either side (or a
    subject only one variant has) is dropped; all differences zero, or no pair
    left, is not significant. Fewer pairs still run the test, but the exact
    test cannot reach p < 0.05 with fewer than 6 non-zero differences, so such
    small sets never separate variants. One variant scores 0.

    Returns:
        Columns ``group`` (``task_group``), ``task``, ``class``, ``metric``,
        ``variant``, ``significance`` (int) and ``pairs`` (the fewest pairs
        left in any of its comparisons; 0 without comparisons).

    Raises:
        ValueError: missing columns, or two values for one
            (variant, task, subject, class, metric): average seeds first.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    data = validated_results(results)
    keys = ["variant", "task", "subject", "class", "metric"]
    duplicated = data.duplicated(keys)
    if duplicated.any():
        example = data.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{int(duplicated.sum())} duplicated per-case row(s), e.g. {example}: pairing by "
            "subject needs one value per variant, task, subject, class and metric"
        )
    lower = set(lower_is_better)
    rows = []
    for (task, class_name, metric), cell in data.groupby(list(CELL_KEYS), sort=False):
        values = cell.pivot(index="subject", columns="variant", values="value")
        variants = list(pd.unique(cell["variant"]))
        score = dict.fromkeys(variants, 0)
        pairs: dict[str, list[int]] = {v: [] for v in variants}
        for a, b in combinations(variants, 2):
            sign, n = _compare(values[a].to_numpy(), values[b].to_numpy(), alpha)
            if metric in lower:
                sign = -sign
            if sign > 0:
                score[a] += 1
            elif sign < 0:
                score[b] += 1
            pairs[a].append(n)
            pairs[b].append(n)
        rows += [
            {
                "group": task_group(task),
                "task": task,
                "class": class_name,
                "metric": metric,
                "variant": v,
                "significance": score[v],
                "pairs": min(pairs[v], default=0),
            }
            for v in variants
        ]
    return pd.DataFrame(rows)


def _compare(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[int, int]:
    """(+1 if ``a`` is significantly larger than ``b``, -1 if smaller, else 0; pairs used)."""
    paired = ~(np.isnan(a) | np.isnan(b))
    difference = a[paired] - b[paired]
    if not difference.any():
        return 0, int(difference.size)
    with warnings.catch_warnings():
        # Small samples, ties and zeros make scipy warn; the result is still usable.
        warnings.simplefilter("ignore")
        try:
            p = wilcoxon(difference).pvalue
        except ValueError:
            return 0, int(difference.size)
    if not p < alpha:  # NaN is not significant
        return 0, int(difference.size)
    return int(np.sign(np.median(difference))), int(difference.size)


def rank_scores(
    results: pd.DataFrame,
    *,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Rank score per variant, separately for the binary and the multi-class tasks.

    The rank score is the mean of a variant's significance scores
    (``significance_scores``) over the classes and metrics of a group; all
    ``binary:*`` tasks form one group, each contributing its own class. A
    variant missing from some class or metric is averaged over those it has
    (``n_scores`` says how many).

    Returns:
        Columns ``group``, ``rank`` (1 is best; ties share the better rank),
        ``variant``, ``rank_score``, ``n_scores``; sorted by group (``binary``,
        ``multiclass``, then others as they appear) and, within a group, by
        rank score, best first.
    """
    scores = significance_scores(results, alpha=alpha, lower_is_better=lower_is_better)
    return ranks_from_scores(scores)


def ranks_from_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """``rank_scores`` from already computed ``significance_scores``.

    Lets a caller that also reports the significance scores test each pair only once.
    """
    ranked = (
        scores.groupby(["group", "variant"], sort=False)["significance"]
        .agg(rank_score="mean", n_scores="size")
        .reset_index()
    )
    ranked["rank"] = (
        ranked.groupby("group")["rank_score"].rank(method="min", ascending=False).astype(int)
    )
    groups = _group_order(ranked["group"])
    ranked = ranked.assign(_g=ranked["group"].map(groups), _v=range(len(ranked)))
    ranked = ranked.sort_values(["_g", "rank", "_v"]).drop(columns=["_g", "_v"])
    return ranked[["group", "rank", "variant", "rank_score", "n_scores"]].reset_index(drop=True)


def _group_order(groups: pd.Series) -> dict[str, int]:
    """Position of each group: ``binary``, ``multiclass``, then the rest as they appear."""
    first = [g for g in ("binary", "multiclass") if g in set(groups)]
    rest = [g for g in pd.unique(groups) if g not in first]
    return {g: i for i, g in enumerate([*first, *rest])}
