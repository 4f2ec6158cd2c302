"""The long frame of per-case results that every paper table and figure starts from.

One row per measurement, with the columns ``variant`` (e.g. the loss
``ce+median``), ``task`` (``multiclass``, ``binary:vessels``, ...), ``subject``,
``class`` (the structure), ``metric`` (``dice``, ``hd95``, ``assd``,
``precision``, ``recall``) and ``value``. ``per_case_long`` turns a run's
per-case CSV into that layout; ``validated_results`` checks a frame of it.

The ``task`` column is the tables' column group: the segmentation task in the
loss study, the label condition (``full``, ``sparse_k4``, ...) in the
skip-connection study. Ranks are computed per group (``task_group``).

Rows of every table keep the order in which variants, tasks, classes and
metrics first appear in the input (``appearance_sorted``), so tables follow
the ablation grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

COLUMNS: tuple[str, ...] = ("variant", "task", "subject", "class", "metric", "value")
LOWER_IS_BETTER: tuple[str, ...] = ("hd95", "assd")
# One table cell (and one significance comparison): a task, a class and a metric.
CELL_KEYS: tuple[str, ...] = ("task", "class", "metric")
# lightning_modules.postprocessing.RAW_SUFFIX, not imported: the tables need no torch.
RAW_SUFFIX = "_raw"


def per_case_long(per_case: pd.DataFrame, *, variant: str, task: str) -> pd.DataFrame:
    """A run's per-case CSV (``subject``, ``class``, one column per metric) -> long rows.

    Every numeric column other than ``subject`` and ``class`` is taken as a metric, but
    for the ``*_raw`` ones: metrics before post-processing, shown by the run, not ranked.
    """
    metrics = [
        c
        for c in per_case.columns
        if c not in ("subject", "class")
        and not c.endswith(RAW_SUFFIX)
        and pd.api.types.is_numeric_dtype(per_case[c])
    ]
    long = per_case.melt(
        id_vars=["subject", "class"], value_vars=metrics, var_name="metric", value_name="value"
    )
    return long.assign(variant=variant, task=task)[list(COLUMNS)]


def task_group(task: str) -> str:
    """The ranking group of a task: ``binary`` for every ``binary:*`` task, else the task."""
    return "binary" if task == "binary" or task.startswith("binary:") else task


def validated_results(results: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``results`` with just ``COLUMNS`` and float values, or a clear error.

    Raises:
        ValueError: a column of ``COLUMNS`` is missing, or ``results`` is empty.
    """
    missing = [c for c in COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks column(s) {missing}; expected {list(COLUMNS)}")
    if results.empty:
        raise ValueError("results is empty")
    data = results[list(COLUMNS)].copy()
    data["value"] = pd.to_numeric(data["value"]).astype(float)
    return data


def appearance_sorted(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Sort by each column's order of first appearance (a stable multi-key sort)."""

    def first_seen(column: pd.Series) -> pd.Series:
        return column.map({value: i for i, value in enumerate(pd.unique(column))})

    return frame.sort_values(list(columns), key=first_seen, kind="stable").reset_index(drop=True)
