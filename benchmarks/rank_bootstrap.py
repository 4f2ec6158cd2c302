"""Rank intervals: the bootstrap on arrays against one resampled frame at a time.

``experiments.rank_intervals.bootstrap_ranks`` ranks every resample on arrays. The peer
is what a user would write from the ranking's public functions: resample the per-case
frame, then ``significance_scores`` and ``ranks_from_scores`` on it, once per resample
(``ranks_by_frames``; the tests use it as the arrays' oracle). Both run on per-case
results shaped as the loss study's (5 tasks x 12 losses, 6 test subjects, five metrics,
values on a coarse grid as Dice and HD95 are), the peer on fewer resamples; the figure
is the ratio of seconds per resample, the calls taking turns, and the script checks that
both give the same rank in every resample they share.

Run: .venv/bin/python -m benchmarks.rank_bootstrap [--resamples 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_common import Row, interleaved, parse_options, print_rows
from experiments.per_case import COLUMNS
from experiments.rank_intervals import bootstrap_ranks
from experiments.ranking import ranks_from_scores, significance_scores

CASE_KEYS = ["variant", "task", "subject", "class", "metric"]
STRUCTURES = ("cerebrum", "cerebellum", "brainstem", "vessels")
METRICS = ("dice", "hd95", "assd", "precision", "recall")
LOSSES = tuple(
    f"{base}+{weighting}"
    for base in ("ce", "dice")
    for weighting in ("none", "inverse", "median", "focal", "dtm", "dpt")
)


def ranks_by_frames(results: pd.DataFrame, *, resamples: int, seed: int) -> pd.DataFrame:
    """``bootstrap_ranks`` as its docstring states it, one resampled frame at a time.

    Draws from ``numpy.random.default_rng(seed)`` in the same order (per resample, the
    seeds where there are several, then the subjects), so the two agree resample by
    resample. Returns columns ``group``, ``rank``, ``variant``, ``rank_score``,
    ``n_scores`` and ``resample``.
    """
    rng = np.random.default_rng(seed)
    seeds = results["seed"].dropna().unique() if "seed" in results.columns else []
    subjects = list(pd.unique(results["subject"]))
    ranks = []
    for resample in range(resamples):
        data = results
        if len(seeds) > 1:  # each case averaged over the seeds drawn, a seed drawn twice twice
            drawn = pd.Series(rng.choice(seeds, size=len(seeds))).value_counts()
            weight = data["seed"].map(drawn).fillna(0).where(data["value"].notna(), 0)
            sums = (
                data.assign(value=data["value"].fillna(0) * weight, weight=weight)
                .groupby(CASE_KEYS, sort=False)[["value", "weight"]]
                .sum()
            )
            data = (sums["value"] / sums["weight"].where(sums["weight"] > 0)).rename("value")
            data = data.reset_index()
        picked = rng.integers(len(subjects), size=len(subjects))
        data = pd.concat(
            [
                data[data["subject"] == subjects[k]].assign(subject=f"{subjects[k]}#{i}")
                for i, k in enumerate(picked)
            ]
        )
        ranks.append(ranks_from_scores(significance_scores(data)).assign(resample=resample))
    return pd.concat(ranks, ignore_index=True)


def loss_study_results(subjects: int = 6, seed: int = 0) -> pd.DataFrame:
    """Per-case results shaped as the loss study's: each loss a little better or worse
    than the next, values rounded to two decimals (ties and zero differences)."""
    rng = np.random.default_rng(seed)
    tasks = {"multiclass": STRUCTURES, **{f"binary:{s}": (s,) for s in STRUCTURES}}
    rows = []
    for task, classes in tasks.items():
        for class_name in classes:
            for metric in METRICS:
                base = rng.uniform(0.5, 0.9, subjects)
                for rank, loss in enumerate(LOSSES):
                    values = base + 0.01 * rank + rng.normal(0, 0.02, subjects)
                    rows += [
                        (loss, task, f"s{i}", class_name, metric, round(float(v), 2))
                        for i, v in enumerate(values)
                    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """One row: seconds per resample of the arrays against the frames. ``scratch`` unused."""
    results = loss_study_results()
    found: dict[str, pd.DataFrame] = {}

    def timed(name: str, resamples: int, call: Callable[..., pd.DataFrame]) -> Callable:
        def run() -> list[float]:
            start = time.perf_counter()
            found[name] = call(results, resamples=resamples, seed=0)
            return [(time.perf_counter() - start) / resamples]

        return run

    samples = interleaved(
        {
            "arrays": timed("arrays", options.resamples, bootstrap_ranks),
            "frames": timed("frames", options.frame_resamples, ranks_by_frames),
        },
        options.rounds,
    )
    arrays, frames = (statistics.median(samples[name]) for name in ("arrays", "frames"))
    keys = ["resample", "group", "variant"]
    shared = found["arrays"][found["arrays"]["resample"] < options.frame_resamples]
    same = (
        shared.set_index(keys)["rank"]
        .sort_index()
        .equals(found["frames"].set_index(keys)["rank"].sort_index())
    )
    return [
        Row(
            "rank intervals of the loss study: bootstrap_ranks / a frame per resample",
            "(informs)",
            f"{arrays / frames:.3f}x",
            None,
            f"{arrays * 1e3:.2f} against {frames * 1e3:.1f} ms per resample "
            f"({options.resamples} and {options.frame_resamples} resamples, median of "
            f"{options.rounds}); same ranks in every shared resample: {'yes' if same else 'NO'}",
            arrays / frames,
        )
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, help="resamples on arrays (default 1000)")
    parser.add_argument("--frame_resamples", type=int, help="resamples as frames (default 50)")
    parser.add_argument("--rounds", type=int, help="turns of each (default 3)")
    return parse_options(
        parser,
        argv,
        full={"resamples": 1000, "frame_resamples": 50, "rounds": 3},
        tiny={"resamples": 20, "frame_resamples": 5, "rounds": 1},
    )


def main() -> None:
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
