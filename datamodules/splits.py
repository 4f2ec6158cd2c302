"""Train / validation / test splits of a manifest's subjects.

The manifest's ``split`` column decides when it has one; otherwise a seeded
shuffle by fraction, so that the same seed always gives the same split and test
subjects never enter training.

Example:
    >>> from pathlib import Path
    >>> records = [SubjectRecord(f"s{i}", {}, None, None) for i in range(5)]
    >>> splits = split_records(records, Path("m.csv"), val_fraction=0.2, test_fraction=0.2, seed=0)
    >>> [len(splits[name]) for name in SPLITS]
    [3, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from datamodules.manifest import ManifestError, SubjectRecord

SPLITS = ("train", "val", "test")


def split_records(
    records: Sequence[SubjectRecord],
    manifest: Path,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[SubjectRecord]]:
    """Use the manifest's ``split`` column, or a seeded split by fraction.

    Raises:
        ManifestError: when a split would be empty.
    """
    if any(record.split is not None for record in records):
        splits = {name: [r for r in records if r.split == name] for name in SPLITS}
        empty = [name for name in SPLITS if not splits[name]]
        if empty:
            raise ManifestError(
                f"Manifest '{manifest}': the split column has no {empty} subjects; "
                f"every one of {list(SPLITS)} needs at least one"
            )
        return splits
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(records), generator=generator).tolist()
    n_test = max(1, round(len(records) * test_fraction))
    n_val = max(1, round(len(records) * val_fraction))
    if len(records) - n_test - n_val < 1:
        raise ManifestError(
            f"Manifest '{manifest}' has {len(records)} subjects: too few for "
            f"{n_val} validation and {n_test} test subjects and at least one for training"
        )
    shuffled = [records[i] for i in order]
    return {
        "test": shuffled[:n_test],
        "val": shuffled[n_test : n_test + n_val],
        "train": shuffled[n_test + n_val :],
    }
