"""Training-curve stability: how smoothly a run learned, from its per-epoch curves.

The loss study (Sugino et al., Healthcare 9(8):938, 2021) reports that weighting
by predicted probability stabilised learning most; these numbers make that
claim comparable across runs. Pure functions of the curves, no Lightning:

- ``stability/val_dice_std_last_quarter``: standard deviation (ddof 0) of the
  validation Dice over the last quarter of the epochs, ``ceil(n / 4)`` epochs
  and at least one;
- ``stability/val_dice_mean_abs_change``: mean absolute epoch-to-epoch change;
- ``stability/val_dice_drops``: how often the Dice fell by more than
  ``drop_threshold`` from one epoch to the next;
- ``stability/epochs_to_95pct``: the first epoch (1-based) whose Dice reaches
  ``reach_fraction`` times the final Dice;
- ``stability/train_loss_std_last_quarter`` and
  ``stability/train_loss_mean_abs_change``: the same for the training loss.

Example:
    >>> curve_stability([0.2, 0.6, 0.5, 0.8])["stability/val_dice_drops"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

PREFIX = "stability/"


def curve_stability(
    val_dice: Sequence[float],
    train_loss: Sequence[float] | None = None,
    *,
    drop_threshold: float = 0.05,
    reach_fraction: float = 0.95,
) -> dict[str, float]:
    """Stability metrics of one run's curves, keyed ``stability/<name>``.

    Args:
        val_dice: validation Dice per epoch, in epoch order.
        train_loss: training loss per epoch; ``None`` leaves out the loss metrics.
        drop_threshold: a fall larger than this between consecutive epochs is a drop.
        reach_fraction: ``epochs_to_95pct`` counts epochs until the Dice reaches
            this fraction of its final value.

    Returns:
        Floats keyed as in the module docstring. With one epoch the quantities
        that need a change between epochs are 0 (the std over one epoch is 0
        too, and ``epochs_to_95pct`` is 1). A curve holding a NaN or inf gives
        NaN for every metric of that curve, so a diverged run shows as
        missing rather than as a misleadingly calm number.

    Raises:
        ValueError: an empty or non-1-D curve, or an option out of range.
    """
    if not drop_threshold >= 0:
        raise ValueError(f"drop_threshold must be >= 0, got {drop_threshold}")
    if not 0 < reach_fraction <= 1:
        raise ValueError(f"reach_fraction must be in (0, 1], got {reach_fraction}")
    dice = _curve(val_dice, "val_dice")
    metrics = {f"{PREFIX}val_dice_{name}": value for name, value in _spread(dice).items()}
    if np.isfinite(dice).all():
        drops = float(np.sum(-np.diff(dice) > drop_threshold))
        reached = np.flatnonzero(dice >= reach_fraction * dice[-1])
        # The final epoch always qualifies when the Dice is >= 0; a negative
        # curve (not a Dice) has no such guarantee and gives NaN.
        epochs = float(reached[0] + 1) if reached.size else math.nan
    else:
        drops = epochs = math.nan
    metrics[f"{PREFIX}val_dice_drops"] = drops
    metrics[f"{PREFIX}epochs_to_95pct"] = epochs
    if train_loss is not None:
        loss = _curve(train_loss, "train_loss")
        metrics.update({f"{PREFIX}train_loss_{k}": v for k, v in _spread(loss).items()})
    return metrics


def stability_table(curves: pd.DataFrame, **options: float) -> pd.DataFrame:
    """``curve_stability`` of every run in a long frame of curves.

    Args:
        curves: columns ``variant``, ``epoch``, ``val_dice``, optionally ``task``
            (one run per variant and task) and ``train_loss``.
        **options: passed to ``curve_stability``.

    Returns:
        One row per run: ``variant`` (and ``task``) then the ``stability/*``
        columns, runs in order of first appearance.
    """
    missing = {"variant", "epoch", "val_dice"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves lacks column(s) {sorted(missing)}")
    keys = ["variant", "task"] if "task" in curves.columns else ["variant"]
    rows = []
    for key, run in curves.sort_values("epoch", kind="stable").groupby(keys, sort=False):
        loss = run["train_loss"] if "train_loss" in run.columns else None
        if loss is not None and loss.isna().all():
            loss = None
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                **curve_stability(run["val_dice"], loss, **options),
            }
        )
    return pd.DataFrame(rows)


def _curve(values: Sequence[float], name: str) -> np.ndarray:
    curve = np.asarray(values, dtype=float)
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {curve.shape}")
    return curve


def _spread(curve: np.ndarray) -> dict[str, float]:
    """Std over the last quarter and mean absolute epoch-to-epoch change."""
    if not np.isfinite(curve).all():
        return {"std_last_quarter": math.nan, "mean_abs_change": math.nan}
    last_quarter = curve[-max(1, math.ceil(curve.size / 4)) :]
    change = float(np.abs(np.diff(curve)).mean()) if curve.size > 1 else 0.0
    return {"std_last_quarter": float(last_quarter.std(ddof=0)), "mean_abs_change": change}
