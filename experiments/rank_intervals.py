"""How sure each rank is: bootstrap intervals of the ranks of ``experiments.ranking``.

With a handful of test cases and one seed, every rank below the first can move
with float noise (another machine of the same kind moved ranks 1 and 2 of the
loss study). ``bootstrap_ranks`` redraws the test cases with replacement and
ranks the variants of each resample by exactly the rules of ``ranks_from_scores``;
``bootstrap_rank_intervals`` reports the central percentile interval of each
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.per_case import LOWER_IS_BETTER, task_group, validated_results
from experiments.ranking import (
    CASE_KEYS,
    cell_rows,
    ranks_from_scores,
    refuse_duplicated_cases,
    significance_scores,
    significant_signs,
)
from experiments.table_format import MISSING, format_latex, format_markdown

# The interval's coverage that the tables report.
LEVEL = 0.95


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

    The ranks are ``bootstrap_ranks``'. The interval runs from the ``(1 - level) / 2``
    quantile of a variant's ranks over the resamples that ranked it, taken with
    ``method="lower"``, to the ``(1 + level) / 2`` quantile with ``method="higher"``:
    both are ranks some resample gave, so the bounds are integers, and the interval
    errs on the wide side.

    Args:
        results, resamples, seed, alpha, lower_is_better: as in ``bootstrap_ranks``.
        level: the interval's coverage, in (0, 1).

    Returns:
        Columns ``group``, ``variant``, ``rank_low``, ``rank_high`` (int), one
        row per variant that some resample ranked, in the order they first appear.

    Raises:
        ValueError: bad ``level``, or as ``bootstrap_ranks``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ranks = bootstrap_ranks(
        results, resamples=resamples, seed=seed, alpha=alpha, lower_is_better=lower_is_better
    )
    tail = (1 - level) / 2
    intervals = (
        ranks.groupby(["group", "variant"], sort=False)["rank"]
        .agg(
            rank_low=lambda r: np.quantile(r, tail, method="lower"),
            rank_high=lambda r: np.quantile(r, 1 - tail, method="higher"),
        )
        .astype(int)
        .reset_index()
    )
    return _group_variants(results).merge(intervals, on=["group", "variant"])


def bootstrap_ranks(
    results: pd.DataFrame,
    *,
    resamples: int,
    seed: int,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """The rank of every variant in each of ``resamples`` bootstrap resamples.

    A resample draws as many subjects as the results have, with replacement,
    once for all variants and tasks, so that the Wilcoxon pairs stay paired; a
    subject drawn twice enters as two subjects. A task without some drawn
    subject just has fewer cases in that resample, and a variant without any
    drawn case in a cell is not scored there. Where ``results`` has a ``seed``
    column with several seeds, each resample first draws the seeds with
    replacement (once for all variants) and averages each case over the drawn
    seeds, counting a seed drawn twice twice; results whose seeds were already
    averaged (as ``experiments.ablation_results`` passes them) are resampled by
    subject only. Each resample is ranked by exactly the rules of
    ``significance_scores`` and ``ranks_from_scores``, on arrays rather than frames:
    the loss study's 1000 resamples take 3 s so, 37 s as frames (``benchmarks.rank_bootstrap``).

    Args:
        results: long per-case results (``experiments.per_case``), maybe with ``seed``.
        resamples: how many bootstrap resamples (>= 1).
        seed: seed of the ``numpy.random.default_rng`` that makes every draw, so
            that the same seed gives the same ranks.
        alpha, lower_is_better: as in ``significance_scores``.

    Returns:
        Columns ``resample``, ``group``, ``variant``, ``rank`` (1 is best): per
        resample, a row per variant it ranked, in the order the variants first appear.

    Raises:
        ValueError: bad ``resamples`` or ``alpha``, or unusable results (as
            ``significance_scores``; with several seeds, one value per case and seed).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    seeds = results["seed"].dropna().unique() if "seed" in results.columns else []
    data = validated_results(results)
    if len(seeds) > 1:
        data["seed"] = results["seed"].to_numpy()
        refuse_duplicated_cases(data, [*CASE_KEYS, "seed"])
    else:
        refuse_duplicated_cases(data)
        seeds = []
    study = _CaseArrays.from_results(data, seeds, set(lower_is_better))
    seed_counts, subjects = _draws(study, seeds, resamples, np.random.default_rng(seed))
    ranks = np.concatenate(
        [
            study.ranks(seed_counts[chunk], subjects[chunk], alpha)
            for chunk in _chunks(resamples, study.resample_size())
        ]
    )  # (resamples, groups, variants); 0 where a variant is not ranked
    order = _group_variants(data)
    g = pd.Index(study.groups).get_indexer(order["group"])
    v = pd.Index(study.variants).get_indexer(order["variant"])
    table = pd.DataFrame(
        {
            "resample": np.repeat(np.arange(resamples), len(order)),
            "group": np.tile(order["group"].to_numpy(), resamples),
            "variant": np.tile(order["variant"].to_numpy(), resamples),
            "rank": ranks[:, g, v].reshape(-1),
        }
    )
    return table[table["rank"] > 0].reset_index(drop=True)


def _group_variants(results: pd.DataFrame) -> pd.DataFrame:
    """Each (group, variant) of the results once, in the order they first appear."""
    groups = results.assign(group=results["task"].map(task_group))
    return groups[["group", "variant"]].drop_duplicates()


@dataclass(frozen=True)
class _Cell:
    """One (task, class, metric) of the results as arrays."""

    group: int  # position in ``_CaseArrays.groups``
    variants: np.ndarray  # (V,) positions in ``_CaseArrays.variants``
    values: np.ndarray  # (seeds, subjects, V), NaN where there is no value
    present: np.ndarray  # (subjects, V): a row exists, its value maybe NaN
    lower_is_better: bool


@dataclass(frozen=True)
class _CaseArrays:
    """The per-case results as one array per cell, subjects and seeds by position."""

    variants: list[str]
    groups: list[str]
    subjects: int
    cells: list[_Cell]

    @classmethod
    def from_results(cls, data: pd.DataFrame, seeds: Sequence, lower: set[str]) -> _CaseArrays:
        variant_codes, variants = pd.factorize(data["variant"])
        # Subjects in order of first appearance: the order the draws index.
        subject_codes, subjects = pd.factorize(data["subject"])
        groups = list(pd.unique(data["task"].map(task_group)))
        if len(seeds):  # rows of a seed not drawn (or NaN) never count
            seed_codes = pd.Index(seeds).get_indexer(data["seed"])
        else:
            seed_codes = np.zeros(len(data), dtype=int)
        values = data["value"].to_numpy()
        cells = []
        for (task, _, metric), index in cell_rows(data).items():
            columns, cell_variants = pd.factorize(variant_codes[index])
            present = np.zeros((len(subjects), len(cell_variants)), dtype=bool)
            present[subject_codes[index], columns] = True
            cube = np.full((max(len(seeds), 1), *present.shape), np.nan)
            seeded = seed_codes[index] >= 0
            kept = index[seeded]
            cube[seed_codes[kept], subject_codes[kept], columns[seeded]] = values[kept]
            group = groups.index(task_group(task))
            cells.append(_Cell(group, np.asarray(cell_variants), cube, present, metric in lower))
        return cls(list(variants), groups, len(subjects), cells)

    def resample_size(self) -> int:
        """Array elements one resample's widest cell compares: the chunks are sized by it."""
        widest = max(len(cell.variants) for cell in self.cells)
        return self.subjects * max(widest * (widest - 1) // 2, 1)

    def ranks(self, seed_counts: np.ndarray, subjects: np.ndarray, alpha: float) -> np.ndarray:
        """Ranks ``(R, groups, variants)`` of R resamples, 0 where a variant is unranked.

        ``seed_counts`` is (R, seeds), how often each seed was drawn (one column of ones
        where the results have one seed);
        ``subjects`` is (R, subjects), the positions drawn.
        """
        shape = (len(subjects), len(self.groups), len(self.variants))
        total, scored = np.zeros(shape), np.zeros(shape, dtype=int)
        for cell in self.cells:
            present = cell.present[subjects].any(axis=1)  # (R, V)
            values = _drawn_values(cell, seed_counts, subjects)
            wins = _significance(values, alpha, lower_is_better=cell.lower_is_better)
            total[:, cell.group, cell.variants] += np.where(present, wins, 0)
            scored[:, cell.group, cell.variants] += present
        ranked = scored > 0
        mean = np.where(ranked, total / np.maximum(scored, 1), -np.inf)
        # Rank "min", best first: one plus the ranked variants of a strictly higher mean.
        better = (mean[..., None, :] > mean[..., :, None]) & ranked[..., None, :]
        return np.where(ranked, 1 + better.sum(axis=-1), 0)


def _drawn_values(cell: _Cell, seed_counts: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Values ``(R, subjects drawn, V)``: each case averaged over the drawn seeds, then drawn."""
    if seed_counts.shape[1] == 1:  # one seed: the values themselves
        return cell.values[0][subjects]
    known = ~np.isnan(cell.values)
    weights = seed_counts[:, :, None, None] * known  # (R, seeds, subjects, V)
    sums = np.where(weights > 0, weights * np.where(known, cell.values, 0), 0).sum(axis=1)
    counted = weights.sum(axis=1)
    averaged = sums / np.where(counted > 0, counted, np.nan)
    return np.take_along_axis(averaged, subjects[:, :, None], axis=1)


def _significance(values: np.ndarray, alpha: float, *, lower_is_better: bool) -> np.ndarray:
    """Significance scores ``(R, V)`` of the variants of ``values`` (R, subjects, V): per
    resample, how many variants each is significantly better than (``significant_signs``)."""
    resamples, cases, width = values.shape
    first, second = np.triu_indices(width, k=1)
    wins = np.zeros((resamples, width), dtype=int)
    if len(first) == 0:
        return wins
    a = values[:, :, first].transpose(1, 0, 2).reshape(cases, -1)
    b = values[:, :, second].transpose(1, 0, 2).reshape(cases, -1)
    signs = significant_signs(a, b, alpha)[0].reshape(resamples, len(first))
    if lower_is_better:
        signs = -signs
    rows = np.arange(resamples)[:, None]
    np.add.at(wins, (rows, first), signs > 0)
    np.add.at(wins, (rows, second), signs < 0)
    return wins


def _draws(
    study: _CaseArrays, seeds: Sequence, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each resample's seed counts (a column of ones for one seed) and drawn subject
    positions, drawn in turn from ``rng``: seeds first, then subjects, resample by resample."""
    counts = np.ones((resamples, max(len(seeds), 1)), dtype=int)
    subjects = np.empty((resamples, study.subjects), dtype=int)
    for r in range(resamples):
        if len(seeds):
            drawn = rng.choice(np.asarray(seeds), size=len(seeds))
            counts[r] = np.bincount(pd.Index(seeds).get_indexer(drawn), minlength=len(seeds))
        subjects[r] = rng.integers(study.subjects, size=study.subjects)
    return counts, subjects


def _chunks(resamples: int, size_of_one: int, budget: int = 4_000_000) -> list[slice]:
    """Slices of the resamples that keep each chunk's compared arrays near ``budget`` elements."""
    step = max(1, budget // max(size_of_one, 1))
    return [slice(start, start + step) for start in range(0, resamples, step)]


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
