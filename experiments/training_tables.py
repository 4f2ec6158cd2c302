"""Tables of how the networks were trained, beside how they scored.

- ``supervision_table``: how weak each label condition's training labels were
  (labelled fraction, the weak labels' Dice against the truth);
- ``complexity_table``: each network's parameters and multiply-adds;
- ``stability_summary``: training-stability metrics averaged over seeds.

All three read run-level rows (one per training run), not per-case results.
"""

from __future__ import annotations

import pandas as pd

from experiments.per_case import appearance_sorted
from experiments.stability import PREFIX as STABILITY_PREFIX

# The weak-label metrics a run logs (experiments.tracking.RunRecorder) start with this.
SUPERVISION_PREFIX = "weak_label/"


def supervision_table(supervision: pd.DataFrame) -> pd.DataFrame:
    """How weak the training labels of each column group were, averaged over its runs.

    Args:
        supervision: one row per run: ``task`` (the group), ``weak_labels`` (bool:
            whether the run trained on weak labels) and ``weak_label/*`` columns
            (``experiments.tracking.RunRecorder``: ``labelled_fraction`` and the
            per-structure Dice of the weak labels on labelled voxels). Runs on full
            labels log none of these: their labels are their own truth, fraction and
            Dice 1. A weak run without them (logged before they existed) stays NaN.

    Returns:
        Index ``task``; columns ``labelled_fraction`` then ``dice_*`` in order of appearance.
    """
    columns = [c for c in supervision.columns if str(c).startswith(SUPERVISION_PREFIX)]
    missing = {"task", "weak_labels"} - set(supervision.columns)
    if missing:
        raise ValueError(f"supervision lacks column(s) {sorted(missing)}")
    rows = supervision.copy()
    rows.loc[~rows["weak_labels"].astype(bool), columns] = 1.0
    table = rows.groupby("task", sort=False)[columns].mean()
    table = table.rename(columns=lambda c: str(c).removeprefix(SUPERVISION_PREFIX))
    first = ["labelled_fraction"] if "labelled_fraction" in table.columns else []
    return table[first + [c for c in table.columns if c not in first]]


def complexity_table(complexity: pd.DataFrame) -> pd.DataFrame:
    """Parameters and multiply-adds per forward pass of each variant's network.

    Args:
        complexity: columns ``variant``, ``parameters`` and ``macs`` (one training
            patch), one row per run; runs of one variant agree, the first is kept.

    Returns:
        Index ``variant``; columns ``parameters`` and ``macs`` (integers).
    """
    missing = {"variant", "parameters", "macs"} - set(complexity.columns)
    if missing:
        raise ValueError(f"complexity lacks column(s) {sorted(missing)}")
    table = complexity.dropna(subset=["parameters", "macs"]).drop_duplicates("variant")
    return table.set_index("variant")[["parameters", "macs"]].astype("int64")


def stability_summary(stability: pd.DataFrame) -> pd.DataFrame:
    """Stability metrics per variant (and task), averaged over repeated runs (seeds).

    Args:
        stability: a ``variant`` column, optionally ``task``, and ``stability/*`` columns.

    Returns:
        Columns ``[task,] variant`` and the metrics without the ``stability/``
        prefix, in order of first appearance.
    """
    metrics = [c for c in stability.columns if str(c).startswith(STABILITY_PREFIX)]
    if "variant" not in stability.columns or not metrics:
        raise ValueError("stability needs a 'variant' column and 'stability/*' columns")
    keys = ["task", "variant"] if "task" in stability.columns else ["variant"]
    table = stability.groupby(keys, sort=False)[metrics].mean().reset_index()
    table = appearance_sorted(table, keys)
    return table.rename(columns=lambda c: str(c).removeprefix(STABILITY_PREFIX))
