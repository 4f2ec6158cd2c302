"""Bootstrap rank intervals on hand-made per-case tables, and the fast Wilcoxon path."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import wilcoxon

from benchmarks.rank_bootstrap import ranks_by_frames
from experiments.ablation_file import TABLE_DEFAULTS, AblationError, load_ablation
from experiments.rank_intervals import bootstrap_rank_intervals, bootstrap_ranks
from experiments.ranking import rank_scores, significant_signs
from experiments.tables import write_tables
from tests.conftest import BASELINE
from tests.table_data import BASE, cases

# Alternating small offsets: no order between the variants that carry them.
WOBBLE = np.array([0.02, -0.03, 0.01, -0.02, 0.03, -0.01, 0.02, -0.02])


def intervals(results: pd.DataFrame, *, resamples: int = 100, seed: int = 0) -> dict:
    """``{variant: [rank_low, rank_high]}`` of a single-group study."""
    frame = bootstrap_rank_intervals(results, resamples=resamples, seed=seed)
    return {v: [lo, hi] for v, lo, hi in frame[["variant", "rank_low", "rank_high"]].to_numpy()}


def noisy_study(seed: int = 0) -> pd.DataFrame:
    """Four variants whose Dice differ by less than the case-to-case noise."""
    rng = np.random.default_rng(seed)
    values = {v: list(BASE + 0.01 * i + rng.normal(0, 0.03, 8)) for i, v in enumerate("ABCD")}
    return cases("multiclass", "vessels", "dice", values)


def test_a_clear_winner_is_sure_of_rank_one():
    values = {"A": list(BASE + 0.3), "B": list(BASE + WOBBLE), "C": list(BASE - WOBBLE)}
    ranks = intervals(cases("binary:vessels", "vessels", "dice", values))
    assert ranks["A"] == [1, 1]
    assert ranks["B"][0] == ranks["C"][0] == 2  # behind A in every resample


def test_pairs_stay_paired_across_a_large_subject_effect():
    # A beats B by 0.01 on every subject, far less than the subjects differ: only
    # paired draws see it (unpaired, B would often tie with A at rank 1).
    values = {"A": list(BASE + 0.01), "B": list(BASE)}
    assert intervals(cases("multiclass", "vessels", "dice", values)) == {"A": [1, 1], "B": [2, 2]}


def test_identical_variants_share_their_interval():
    values = {"A": list(BASE + WOBBLE), "B": list(BASE), "C": list(BASE)}
    ranks = intervals(cases("multiclass", "vessels", "dice", values))
    assert ranks["B"] == ranks["C"]


def test_the_same_seed_gives_the_same_intervals_and_they_hold_the_point_rank():
    results = noisy_study()
    first = bootstrap_rank_intervals(results, resamples=100, seed=7)
    pd.testing.assert_frame_equal(first, bootstrap_rank_intervals(results, resamples=100, seed=7))
    ranking = rank_scores(results).merge(first, on=["group", "variant"])
    assert len(ranking) == 4
    assert (
        (ranking["rank_low"] <= ranking["rank"]) & (ranking["rank"] <= ranking["rank_high"])
    ).all()
    assert (ranking["rank_high"] > ranking["rank_low"]).any()  # the noise shows


def test_seeds_are_drawn_and_averaged_per_case():
    # A is far better on seed 0 and a little worse on seed 1: better on average,
    # but the resamples that draw seed 1 twice rank B first.
    seeds = [
        cases("multiclass", "vessels", "dice", {"A": list(BASE + 0.3), "B": list(BASE)}),
        cases("multiclass", "vessels", "dice", {"A": list(BASE - 0.1), "B": list(BASE)}),
    ]
    results = pd.concat([s.assign(seed=i) for i, s in enumerate(seeds)], ignore_index=True)
    assert intervals(results) == {"A": [1, 2], "B": [1, 2]}
    one_seed = noisy_study()
    assert intervals(one_seed.assign(seed=42), seed=3) == intervals(one_seed, seed=3)


def test_every_variant_of_the_loss_study_shape_gets_an_interval():
    rng = np.random.default_rng(0)
    structures = ["cerebrum", "cerebellum", "brainstem", "vessels"]
    tasks = {"multiclass": structures, **{f"binary:{s}": [s] for s in structures}}
    losses = [f"{base}+{w}" for base in ("ce", "dice") for w in ("none", "inverse", "dtm")]
    results = pd.concat(
        [
            cases(task, c, metric, {v: list(rng.integers(0, 5, 8) / 4) for v in losses})
            for task, classes in tasks.items()
            for c in classes
            for metric in ("dice", "hd95")
        ],
        ignore_index=True,
    )
    frame = bootstrap_rank_intervals(results, resamples=5, seed=0)
    assert frame.groupby("group")["variant"].apply(list).to_dict() == {
        "binary": losses,
        "multiclass": losses,
    }
    assert frame["rank_low"].between(1, len(losses)).all()
    assert (frame["rank_low"] <= frame["rank_high"]).all()


def ragged_study(rng: np.random.Generator, seeds: int) -> pd.DataFrame:
    """Two task groups, Dice and HD95 (lower is better), values on a coarse grid (ties
    and zero differences), NaN values, a task that lacks two subjects, a variant that
    lacks a class and one with two subjects in a task; with ``seeds`` > 1 a ``seed``
    column."""
    # S is best where it is present; Q's place depends on the seeds drawn.
    shifts = {"P": 0.0, "R": 0.1, "S": 0.3}
    frames = []
    for seed in range(seeds):
        for task, classes in {"multiclass": "ab", "binary:a": "a", "binary:b": "b"}.items():
            for class_name in classes:
                for metric, sign in (("dice", 1), ("hd95", -1)):
                    values = {
                        v: list(np.round(sign * shift + rng.normal(0, 0.15, 8), 1))
                        for v, shift in {**shifts, "Q": [0.2, -0.3, 0.1][seed]}.items()
                    }
                    frame = cases(task, class_name, metric, values).assign(seed=seed)
                    frame.loc[rng.random(len(frame)) < 0.08, "value"] = np.nan
                    if task == "binary:b":
                        frame = frame[~frame["subject"].isin(["s1", "s6"])]
                    if task == "multiclass" and class_name == "b":
                        frame = frame[frame["variant"] != "S"]
                    if task == "binary:a":  # S unscored where a resample draws neither
                        frame = frame[
                            (frame["variant"] != "S") | frame["subject"].isin(["s0", "s1"])
                        ]
                    frames.append(frame)
    results = pd.concat(frames, ignore_index=True)
    return results if seeds > 1 else results.drop(columns="seed")


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_array_bootstrap_ranks_every_resample_as_the_frames_do(seeds):
    results = ragged_study(np.random.default_rng(seeds), seeds)
    keys = ["resample", "group", "variant"]
    expected = ranks_by_frames(results, resamples=60, seed=5).set_index(keys)["rank"]
    found = bootstrap_ranks(results, resamples=60, seed=5).set_index(keys)["rank"]
    pd.testing.assert_series_equal(found.sort_index(), expected.sort_index())
    assert found.groupby(["group", "variant"]).nunique().gt(1).any()  # ranks that move


@pytest.mark.parametrize(
    ("options", "message"), [({"resamples": 0}, "resamples"), ({"level": 1.0}, "level")]
)
def test_bad_bootstrap_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_rank_intervals(noisy_study(), **{"resamples": 10, "seed": 0, **options})


# ------------------------------------------------------------ configuration
def write_study(folder: Path, tables: dict) -> Path:
    """A two-variant ablation file with these `tables:` settings."""
    path = folder / "study.yaml"
    grid = {"weighting": {"none": {}, "dtm": {}}}
    path.write_text(
        yaml.safe_dump({"name": "s", "config": str(BASELINE), "grid": grid, "tables": tables})
    )
    return path


def test_the_ablation_file_sets_the_bootstrap(tmp_path):
    assert load_ablation(write_study(tmp_path, {})).tables == TABLE_DEFAULTS
    tables = load_ablation(write_study(tmp_path, {"rank_resamples": 50, "rank_seed": 3})).tables
    assert (tables["rank_resamples"], tables["rank_seed"]) == (50, 3)
    for bad in ({"rank_resamples": 0}, {"rank_seed": -1}, {"rank_resamples": "many"}):
        with pytest.raises(AblationError, match=f"tables.{next(iter(bad))}"):
            load_ablation(write_study(tmp_path, bad))


# ---------------------------------------------------------- fast Wilcoxon
def scipy_sign(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """scipy's two-sided p (1 where nothing is tested) and the median difference's sign."""
    paired = ~(np.isnan(a) | np.isnan(b))
    difference = a[paired] - b[paired]
    if not difference.any():
        return 1.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wilcoxon(difference).pvalue, int(np.sign(np.median(difference)))


def random_pairs(rng: np.random.Generator, size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired samples: continuous, integer-valued (ties and zeros), or bootstrap-like repeats."""
    if kind == "continuous":
        b = rng.normal(size=size)
        a = b + rng.normal(rng.uniform(-1, 1), 1, size)
    elif kind == "integers":
        a, b = rng.integers(-3, 4, size).astype(float), rng.integers(-2, 3, size).astype(float)
    else:  # repeats of six cases, as a bootstrap resample draws them
        cases_b = rng.normal(size=6)
        index = rng.integers(0, 6, size)
        a, b = (cases_b + rng.normal(0.5, 1, 6))[index], cases_b[index]
    a[rng.random(size) < 0.1] = np.nan
    return a, b


@pytest.mark.parametrize("kind", ["continuous", "integers", "repeats"])
def test_the_fast_wilcoxon_decides_as_scipy(kind):
    rng = np.random.default_rng(1)
    # Up to 13 pairs (after the NaN pairs are dropped): exact, or with ties or zeros
    # scipy's exhaustive permutation test (0.5 s per test at 13, so few there); 14-50:
    # exact, or the normal approximation with ties or zeros; over 50: the approximation.
    samples = {**dict.fromkeys(range(1, 10), 12), 11: 2, 13: 1, 17: 6, 30: 12, 50: 8, 70: 8}
    for size, count in samples.items():
        drawn = [random_pairs(rng, size, kind) for _ in range(count)]
        a, b = (np.stack([pair[i] for pair in drawn], axis=1) for i in (0, 1))
        expected = [scipy_sign(a[:, j], b[:, j]) for j in range(count)]
        for alpha in (0.01, 0.05, 0.1, 0.3, 0.7):
            signs, pairs = significant_signs(a, b, alpha)
            assert list(signs) == [s if p < alpha else 0 for p, s in expected], (size, alpha)
            assert list(pairs) == list((~(np.isnan(a) | np.isnan(b))).sum(axis=0))


def test_the_report_draws_seeds_where_there_are_several(tmp_path):
    # Averaged over its two seeds A wins every case; per seed, the draws of seed 1
    # alone rank B first, so the report's interval must say [1, 2].
    seeds = [
        cases("multiclass", "vessels", "dice", {"A": list(BASE + 0.3), "B": list(BASE)}),
        cases("multiclass", "vessels", "dice", {"A": list(BASE - 0.1), "B": list(BASE)}),
    ]
    seeded = pd.concat([s.assign(seed=i) for i, s in enumerate(seeds)], ignore_index=True)
    keys = ["variant", "task", "subject", "class", "metric"]
    averaged = seeded.groupby(keys, sort=False, as_index=False)["value"].mean()

    def report(folder: Path, **seeds) -> tuple[dict, str]:
        paths = write_tables(
            averaged, None, folder, title="t", rank_resamples=100, rank_seed=0, **seeds
        )
        ranking = pd.read_csv(paths["ranking.csv"])
        found = {v: [lo, hi] for v, lo, hi in ranking[["variant", "rank_low", "rank_high"]].values}
        return found, paths["ranking.md"].read_text()

    by_case, text = report(tmp_path / "cases")
    assert by_case == {"A": [1, 1], "B": [2, 2]}
    assert "resamples of the test cases." in text
    by_seed, text = report(tmp_path / "seeds", seeded_results=seeded)
    assert by_seed == {"A": [1, 2], "B": [1, 2]}
    assert "resamples of the test cases and the seeds." in text
