"""How sure each rank is: bootstrap intervals of the ranks of ``experiments.ranking``.

With a handful of test cases and one seed, every rank below the first can move
with float noise (another machine of the same kind moved ranks 1 and 2 of the
loss study). ``bootstrap_rank_intervals`` redraws the test cases with
replacement, ranks the variants of each resample by exactly the rules of
``ranks_from_scores``, and reports the central percentile interval of each
variant's rank, so that the tables say which ranks the data can tell apart.

Example:
    >>> rng = np.random.default_rng(0)
    >>> base = rng.uniform(0.6, 0.8, size=8)  # Dice of 8 subjects; B is better on each
    >>> results = pd.DataFrame({
    ...     "variant": ["A"] * 8 + ["B"] * 8, "task": "binary:vessels",
    ...     "subject": [f"s{i}" for i in range(8)] * 2, "class": "vessels",
    ...     "metric": "dice", "value": [*base, *(base + rng.uniform(0.05, 0.1, size=8))],
    ... })
    >>> bootstrap_rank_intervals(results, resamples=100, seed=0)
        group variant  rank_low  rank_high
    0  binary       A         2          2
    1  binary       B         1          1
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from experiments.per_case import COLUMNS, LOWER_IS_BETTER, task_group, validated_results
from experiments.ranking import ranks_from_scores, significance_scores
from experiments.table_format import MISSING, format_latex, format_markdown

# The interval's coverage that the tables report.
LEVEL = 0.95
CASE_KEYS = ["variant", "task", "subject", "class", "metric"]


def bootstrap_rank_intervals(
    results: pd.DataFrame,
    *,
    resamples: int,
    seed: int,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Percentile bootstrap interval of each variant's rank, per task group.

    A resample draws as many subjects as the results have, with replacement,
    once for all variants and tasks, so that the Wilcoxon pairs stay paired; a
    subject drawn twice enters as two subjects (``s1#0``, ``s1#3``). A task
    without some drawn subject just has fewer cases in that resample. Where
    ``results`` has a ``seed`` column with several seeds, each resample first
    draws the seeds with replacement (once for all variants) and averages each
    case over the drawn seeds, counting a seed drawn twice twice; results whose
    seeds were already averaged (as ``experiments.ablation_results`` passes
    them) are resampled by subject only.

    The interval runs from the ``(1 - level) / 2`` quantile of the ranks over
    the resamples, taken with ``method="lower"``, to the ``(1 + level) / 2``
    quantile with ``method="higher"``: both are ranks some resample gave, so
    the bounds are integers, and the interval errs on the wide side.

    Args:
        results: long per-case results (``experiments.per_case``), maybe with ``seed``.
        resamples: how many bootstrap resamples (>= 1).
        seed: seed of the ``numpy.random.default_rng`` that makes every draw, so
            that the same seed gives the same intervals.
        alpha, lower_is_better: as in ``significance_scores``.
        level: the interval's coverage, in (0, 1).

    Returns:
        Columns ``group``, ``variant``, ``rank_low``, ``rank_high`` (int), one
        row per variant that some resample ranked, in the order they first appear.

    Raises:
        ValueError: bad ``resamples`` or ``level``, or unusable results (as
            ``significance_scores``).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lower = tuple(lower_is_better)
    seeds = results["seed"].dropna().unique() if "seed" in results.columns else []
    data = validated_results(results)
    if len(seeds) > 1:
        data["seed"] = results["seed"].to_numpy()
    rng = np.random.default_rng(seed)
    ranks = []
    for _ in range(resamples):
        cases = _subjects_drawn(_seeds_drawn(data, seeds, rng) if len(seeds) > 1 else data, rng)
        scores = significance_scores(cases, alpha=alpha, lower_is_better=lower)
        ranks.append(ranks_from_scores(scores)[["group", "variant", "rank"]])
    tail = (1 - level) / 2
    intervals = (
        pd.concat(ranks)
        .groupby(["group", "variant"], sort=False)["rank"]
        .agg(
            rank_low=lambda r: np.quantile(r, tail, method="lower"),
            rank_high=lambda r: np.quantile(r, 1 - tail, method="higher"),
        )
        .astype(int)
        .reset_index()
    )
    order = data.assign(group=data["task"].map(task_group))[["group", "variant"]]
    return order.drop_duplicates().merge(intervals, on=["group", "variant"])


def _seeds_drawn(data: pd.DataFrame, seeds: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Each case averaged over seeds drawn with replacement; NaN where no drawn seed has a value."""
    drawn = pd.Series(rng.choice(seeds, size=len(seeds))).value_counts()
    weight = data["seed"].map(drawn).fillna(0).where(data["value"].notna(), 0)
    weighted = data.assign(value=data["value"].fillna(0) * weight, weight=weight)
    sums = weighted.groupby(CASE_KEYS, sort=False)[["value", "weight"]].sum()
    averaged = (sums["value"] / sums["weight"].where(sums["weight"] > 0)).rename("value")
    return averaged.reset_index()[list(COLUMNS)]


def _subjects_drawn(data: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The rows of subjects drawn with replacement, the i-th draw of ``s`` renamed ``s#i``."""
    rows = data.groupby("subject", sort=False).indices
    subjects = list(pd.unique(data["subject"]))
    drawn = rng.integers(len(subjects), size=len(subjects))
    parts = [rows[subjects[k]] for k in drawn]
    names = np.repeat([f"{subjects[k]}#{i}" for i, k in enumerate(drawn)], [len(p) for p in parts])
    return data.iloc[np.concatenate(parts)].assign(subject=names)


def ranking_section(
    results: pd.DataFrame,
    *,
    title: str,
    decimals: int,
    alpha: float,
    lower_is_better: Iterable[str],
    resamples: int,
    seed: int,
    seeded: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """The ranking of a report: ``rank_scores`` with their bootstrap intervals.

    The ranks come from ``results``; the intervals from ``seeded`` where given:
    the same cases per seed (a ``seed`` column), so that the bootstrap also
    redraws the seeds when there are several.

    Returns:
        The ranking (``ranks_from_scores`` plus ``rank_low`` and ``rank_high``), the
        ``significance_scores`` behind it, and its Markdown section and LaTeX tables,
        one table per task group, with the interval printed ``[1, 2]``.
    """
    lower = tuple(lower_is_better)
    scores = significance_scores(results, alpha=alpha, lower_is_better=lower)
    intervals = bootstrap_rank_intervals(
        results if seeded is None else seeded,
        resamples=resamples,
        seed=seed,
        alpha=alpha,
        lower_is_better=lower,
    )
    several_seeds = seeded is not None and seeded["seed"].nunique() > 1
    redrawn = "the test cases and the seeds" if several_seeds else "the test cases"
    ranking = ranks_from_scores(scores).merge(intervals, on=["group", "variant"], how="left")
    # A variant no resample ranked (too few subjects) has no interval, not a float one.
    ranking = ranking.astype({"rank_low": "Int64", "rank_high": "Int64"})
    markdown = [
        "## Ranking\n\nPairwise two-sided Wilcoxon signed-rank tests on per-case values "
        f"(p < {alpha}); significance score: the number of variants significantly worse in "
        "one class and metric; rank score: its mean over classes and metrics; rank interval: "
        f"the {LEVEL * 100:g} % bootstrap interval of the rank over {resamples} resamples of "
        f"{redrawn}.\n"
    ]
    latex = []
    for group, table in ranking.groupby("group", sort=False):
        cells = pd.DataFrame(
            {
                "rank score": table["rank_score"].to_numpy(),
                "rank interval": [
                    MISSING if pd.isna(low) else f"[{low}, {high}]"
                    for low, high in zip(table["rank_low"], table["rank_high"], strict=True)
                ],
                "n scores": table["n_scores"].to_numpy(),
            },
            index=pd.MultiIndex.from_frame(table[["rank", "variant"]]),
        )
        markdown.append(f"### {group}\n\n{format_markdown(cells, decimals=decimals)}")
        latex.append(
            format_latex(
                cells.assign(**{"rank score": [f"{s:.{decimals}f}" for s in cells["rank score"]]}),
                caption=f"{title}: rank score, {group} tasks (pairwise Wilcoxon, p < {alpha}).",
                label=f"tab:ranking-{group}",
            )
        )
    return ranking, scores, "\n".join(markdown), "\n".join(latex)
