"""Statistical ranking of variants: pairwise Wilcoxon significance and rank scores.

The rank score of Sugino et al. 2021 (Healthcare 9(8):938): pairwise Wilcoxon
signed-rank tests on per-case values, as in the Medical Segmentation Decathlon,
give each variant a significance score per task, class and metric
(``significance_scores``); its mean over the classes and metrics of a task
group is the rank score (``rank_scores``). Input: the long per-case frame of
``experiments.per_case``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from experiments.per_case import CELL_KEYS, LOWER_IS_BETTER, task_group, validated_results

# One value per case: a variant's result for one subject, task, class and metric.
CASE_KEYS: tuple[str, ...] = ("variant", "task", "subject", "class", "metric")


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

    The p-values are scipy's, computed here from the exact null distribution where
    scipy's is exact (``_signed_rank_p``): scipy's exhaustive permutation test for ties
    and zeros (hd95 has many) made one call on the 60 variants of the loss study take
    about 4 s, too slow for the bootstrap of ``experiments.rank_intervals``.

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
    refuse_duplicated_cases(data)
    lower = set(lower_is_better)
    # Codes once for the whole frame: a pivot per cell costs more than the tests.
    variant_codes, variant_names = pd.factorize(data["variant"])
    variant_names = np.asarray(variant_names, dtype=object)  # indexing arrow strings is slow
    subject_codes, _ = pd.factorize(data["subject"])
    values = data["value"].to_numpy()
    rows = []
    for (task, class_name, metric), index in cell_rows(data).items():
        columns, variant_order = pd.factorize(variant_codes[index])  # order of appearance
        subjects, subject_order = pd.factorize(subject_codes[index])
        matrix = np.full((len(subject_order), len(variant_order)), np.nan)
        matrix[subjects, columns] = values[index]
        variants = list(variant_names[variant_order])
        first, second = np.triu_indices(len(variants), k=1)  # the pairs, as in combinations
        signs, pairs = significant_signs(matrix[:, first], matrix[:, second], alpha)
        if metric in lower:
            signs = -signs
        score = np.zeros(len(variants), dtype=int)
        np.add.at(score, first, signs > 0)
        np.add.at(score, second, signs < 0)
        fewest = np.full(len(variants), np.iinfo(int).max)
        np.minimum.at(fewest, first, pairs)
        np.minimum.at(fewest, second, pairs)
        fewest[fewest == np.iinfo(int).max] = 0  # no comparisons
        rows += [
            {
                "group": task_group(task),
                "task": task,
                "class": class_name,
                "metric": metric,
                "variant": v,
                "significance": int(score[i]),
                "pairs": int(fewest[i]),
            }
            for i, v in enumerate(variants)
        ]
    return pd.DataFrame(rows)


def refuse_duplicated_cases(data: pd.DataFrame, keys: Iterable[str] = CASE_KEYS) -> None:
    """Raise a clear ValueError where two rows share their ``keys``: pairs need one value."""
    keys = list(keys)
    duplicated = data.duplicated(keys)
    if duplicated.any():
        example = data.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{int(duplicated.sum())} duplicated per-case row(s), e.g. {example}: pairing by "
            f"subject needs one value per {', '.join(keys)}"
        )


def cell_rows(data: pd.DataFrame) -> dict[tuple[str, str, str], np.ndarray]:
    """Row positions of each (task, class, metric), in the order the cells first appear."""
    indices = data.groupby(list(CELL_KEYS)).indices
    return dict(sorted(indices.items(), key=lambda item: item[1][0]))


def significant_signs(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Column by column: +1 where ``a`` is significantly larger than ``b``, -1 where smaller,
    else 0; and the pairs used.

    ``a`` and ``b`` are (subjects, comparisons); rows with a NaN on either side are
    dropped per column. The p-values come from ``_signed_rank_p``, once per distinct
    pattern of signed ranks: the bootstrap's thousands of columns hold a few hundred.
    """
    columns = np.arange(a.shape[1])
    paired = ~(np.isnan(a) | np.isnan(b))
    difference = np.where(paired, a - b, np.nan)
    sizes = paired.sum(axis=0)
    nonzero = paired & (difference != 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns
        ranks = rankdata(np.where(nonzero, np.abs(difference), np.nan), axis=0, nan_policy="omit")
    # Doubled average ranks are integers; sorted, with zero for a zero or missing pair.
    doubled = np.nan_to_num(np.sort(2 * np.sign(difference) * ranks, axis=0)).astype(np.int32)
    keys = np.ascontiguousarray(doubled.T)
    # All zero or no pair is not significant; a NaN from inf - inf makes scipy's p NaN.
    testable = nonzero.any(axis=0) & ~(paired & np.isnan(difference)).any(axis=0)
    p = np.ones(len(columns))
    tested = np.flatnonzero(testable)
    if len(tested):
        patterns, which = _distinct_rows(np.column_stack([sizes[tested], keys[tested]]))
        patterns = patterns.astype(np.int32)
        distinct = [_signed_rank_p(int(row[0]), row[1:].tobytes()) for row in patterns]
        p[tested] = np.asarray(distinct)[which.reshape(-1)]
    ordered = np.sort(difference, axis=0)  # NaN last: the median of the first `sizes`
    median = (ordered[(sizes - 1) // 2, columns] + ordered[sizes // 2, columns]) / 2
    return np.where(p < alpha, np.sign(median), 0).astype(int), sizes


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2D array and, for each row, the position of its distinct row.

    ``np.unique(axis=0)`` does the same, but sorts the rows as raw bytes, many times slower.
    """
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    starts = np.ones(len(rows), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    which = np.empty(len(rows), dtype=int)
    which[order] = np.cumsum(starts) - 1
    return ordered[starts], which


@functools.lru_cache(maxsize=2**16)
def _signed_rank_p(size: int, pattern: bytes) -> float:
    """``scipy.stats.wilcoxon``'s two-sided p of ``size`` paired differences whose
    non-zero ones have the signed, doubled average ranks in ``pattern`` (int32, 0 = none).

    scipy's p depends on nothing else (zeros dropped, ties averaged). Where scipy's p is
    exact (no ties or zeros and up to 50 pairs; its exhaustive permutation test up to 13
    pairs) it is computed here from the exact null distribution, much faster than
    scipy's permutation test; otherwise (its normal approximation) scipy computes it on
    the signed ranks themselves plus the zeros, which gives the same p.
    """
    signed = np.frombuffer(pattern, dtype=np.int32)
    signed = signed[signed != 0]
    doubled = np.abs(signed)
    if size > 50 or ((size > len(signed) or len(np.unique(doubled)) < len(doubled)) and size > 13):
        difference = np.concatenate([signed / 2, np.zeros(size - len(signed))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ties and zeros make scipy warn
            return float(wilcoxon(difference).pvalue)
    # Under the null each sign is + or - with probability 1/2: count the sums of the
    # positive (doubled) ranks over all 2**m sign patterns.
    counts = np.zeros(doubled.sum() + 1, dtype=np.int64)
    counts[0] = 1
    for rank in doubled:
        counts[rank:] = counts[rank:] + counts[:-rank]
    observed = doubled[signed > 0].sum()
    tail = min(counts[: observed + 1].sum(), counts[observed:].sum())
    return min(1.0, 2 * float(tail) / 2 ** len(doubled))


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
