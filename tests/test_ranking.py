"""Rank score: pairwise Wilcoxon significance on hand-made per-case tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from experiments.ranking import rank_scores, significance_scores
from tests.table_data import BASE, cases, ordered


def test_significance_scores_count_the_variants_significantly_worse(study):
    scores = significance_scores(study).set_index(["task", "metric", "variant"])["significance"]
    scores = scores.sort_index()
    for metric in ("dice", "hd95"):  # hd95: lower is better, and A has the lowest
        assert scores.loc["binary:vessels", metric].to_dict() == {"A": 2, "B": 1, "C": 0}
    assert scores.loc["binary:cerebrum"].eq(0).all()
    assert scores.loc["multiclass", "dice"].to_dict() == {"A": 0, "B": 1, "C": 2}


def test_rank_score_is_the_mean_per_group_sorted_best_first(study):
    ranking = rank_scores(study)
    assert list(ranking.columns) == ["group", "rank", "variant", "rank_score", "n_scores"]
    binary = ranking[ranking["group"] == "binary"]
    # vessels (dice 2, hd95 2) and the tied cerebrum (0, 0): A = 4 / 4, B = 2 / 4, C = 0
    assert list(binary["variant"]) == ["A", "B", "C"]
    assert list(binary["rank_score"]) == [1.0, 0.5, 0.0]
    assert list(binary["rank"]) == [1, 2, 3]
    assert list(binary["n_scores"]) == [4, 4, 4]
    multiclass = ranking[ranking["group"] == "multiclass"]
    assert list(multiclass["variant"]) == ["C", "B", "A"]
    assert list(multiclass["rank_score"]) == [2.0, 1.0, 0.0]
    assert list(ranking["group"]) == ["binary"] * 3 + ["multiclass"] * 3


def test_identical_values_give_no_significance_and_a_shared_rank():
    tied = cases("multiclass", "brainstem", "dice", {v: list(BASE) for v in "ABC"})
    ranking = rank_scores(tied)
    assert list(ranking["rank_score"]) == [0.0, 0.0, 0.0]
    assert list(ranking["rank"]) == [1, 1, 1]
    assert list(ranking["variant"]) == ["A", "B", "C"]  # input order among ties


@pytest.mark.parametrize(
    ("metric", "lower_is_better", "winner"),
    [("dice", ("hd95", "assd"), "A"), ("hd95", ("hd95", "assd"), "C"), ("hd95", (), "A")],
)
def test_the_better_direction_follows_the_metric(metric, lower_is_better, winner):
    # A has the highest values: best for Dice, worst for a distance
    results = cases("multiclass", "vessels", metric, ordered("A", "B", "C"))
    ranking = rank_scores(results, lower_is_better=lower_is_better)
    assert ranking["variant"].iloc[0] == winner
    assert ranking["rank_score"].iloc[0] == 2.0


@pytest.mark.parametrize(("missing", "pairs", "a_score"), [(2, 6, 1), (3, 5, 0)])
def test_pairs_with_a_nan_are_dropped(missing, pairs, a_score):
    values = {"A": list(BASE + 0.2), "B": list(BASE)}
    values["B"][:missing] = [math.nan] * missing
    scores = significance_scores(cases("multiclass", "vessels", "dice", values))
    # six positive differences give the exact two-sided p = 2 / 64 < 0.05; five
    # cannot go below 2 / 32 > 0.05, so they never separate variants
    assert list(scores["pairs"]) == [pairs, pairs]
    assert list(scores["significance"]) == [a_score, 0]


def test_a_subject_missing_for_one_variant_is_dropped_from_the_pairs():
    results = cases("multiclass", "vessels", "dice", {"A": list(BASE + 0.2), "B": list(BASE)})
    results = results.drop(results.index[(results.variant == "B") & (results.subject == "s0")])
    scores = significance_scores(results)
    assert list(scores["pairs"]) == [7, 7]
    assert list(scores["significance"]) == [1, 0]


def test_all_nan_and_single_variant_cells_score_zero_without_raising():
    all_nan = cases("multiclass", "vessels", "hd95", {"A": [math.nan] * 8, "B": list(BASE)})
    assert list(significance_scores(all_nan)["significance"]) == [0, 0]
    single = rank_scores(cases("binary:vessels", "vessels", "dice", {"A": list(BASE)}))
    assert single.to_dict("records") == [
        {"group": "binary", "rank": 1, "variant": "A", "rank_score": 0.0, "n_scores": 1}
    ]


def test_duplicated_cases_and_missing_columns_are_refused(study):
    with pytest.raises(ValueError, match="duplicated"):
        rank_scores(pd.concat([study, study.head(1)]))
    with pytest.raises(ValueError, match="subject"):
        rank_scores(study.drop(columns="subject"))
    with pytest.raises(ValueError, match="alpha"):
        rank_scores(study, alpha=0.0)
