"""Hand-made per-case results for the table tests: orders known in advance, pairs not degenerate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.per_case import COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUBJECTS = [f"s{i}" for i in range(8)]
# Per-subject base values that vary, so that differences between variants are
# not all equal and the test statistic is not degenerate.
BASE = np.array([0.61, 0.74, 0.58, 0.69, 0.72, 0.65, 0.63, 0.70])


def cases(task: str, class_name: str, metric: str, values: dict[str, list[float]]) -> pd.DataFrame:
    """Long per-case rows: one per variant and subject."""
    return pd.DataFrame(
        [
            {
                "variant": variant,
                "task": task,
                "subject": subject,
                "class": class_name,
                "metric": metric,
                "value": value,
            }
            for variant, column in values.items()
            for subject, value in zip(SUBJECTS, column, strict=True)
        ],
        columns=list(COLUMNS),
    )


def ordered(best: str, middle: str, worst: str, *, step: float = 0.1) -> dict[str, list[float]]:
    """Higher values for ``best`` than ``middle`` than ``worst`` on every subject."""
    noise = np.array([0.0, 0.01, -0.01, 0.02, 0.0, -0.02, 0.01, 0.0])
    return {
        best: list(BASE + 2 * step - noise),
        middle: list(BASE + step + noise),
        worst: list(BASE),
    }


def study_results() -> pd.DataFrame:
    """Binary vessels: A > B > C in Dice, and A lowest in HD95; binary cerebrum: all tied;
    multiclass: the reverse order, C > B > A in Dice."""
    hd95 = {v: [10 * (1 - x) for x in column] for v, column in ordered("A", "B", "C").items()}
    tied = {v: list(BASE) for v in "ABC"}
    return pd.concat(
        [
            cases("binary:vessels", "vessels", "dice", ordered("A", "B", "C")),
            cases("binary:vessels", "vessels", "hd95", hd95),
            cases("binary:cerebrum", "cerebrum", "dice", tied),
            cases("binary:cerebrum", "cerebrum", "hd95", tied),
            cases("multiclass", "vessels", "dice", ordered("C", "B", "A")),
        ],
        ignore_index=True,
    )


def validation_curves() -> pd.DataFrame:
    """Validation Dice of A, B and C over four epochs on two tasks."""
    return pd.DataFrame(
        [
            {"variant": v, "task": t, "epoch": e, "val_dice": e / 4 - i / 10}
            for i, v in enumerate("ABC")
            for t in ("binary:vessels", "multiclass")
            for e in range(1, 5)
        ]
    )


def label_conditions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-case Dice of networks N1 > N2 under three label conditions, and the runs'
    weak-label metrics (the full condition logs none)."""
    results = pd.concat(
        [
            cases(condition, structure, "dice", ordered("N1", "N2", "N3", step=shift))
            for condition, shift in (("full", 0.1), ("sparse_k2", 0.05), ("noisy", 0.02))
            for structure in ("cerebrum", "vessels")
        ],
        ignore_index=True,
    )
    supervision = pd.DataFrame(
        [{"variant": v, "task": "full", "weak_labels": False} for v in ("N1", "N2", "N3")]
        + [
            {
                "variant": v,
                "task": "sparse_k2",
                "weak_labels": True,
                "weak_label/labelled_fraction": 0.5,
                "weak_label/dice_cerebrum": 1.0,
                "weak_label/dice_vessels": 1.0,
            }
            for v in ("N1", "N2", "N3")
        ]
        + [
            {
                "variant": v,
                "task": "noisy",
                "weak_labels": True,
                "weak_label/labelled_fraction": 1.0,
                "weak_label/dice_cerebrum": 0.9,
                "weak_label/dice_vessels": dice,
            }
            for v, dice in (("N1", 0.5), ("N2", 0.7), ("N3", 0.6))
        ]
    )
    return results, supervision
