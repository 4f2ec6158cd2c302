"""A tiny hand-made manifest cohort shared by the manifest, checks and fingerprint tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datamodules.manifest import ManifestError, load_manifest

CHANNELS = ["t2", "mra"]
LABEL_VALUES = [0, 1, 2, 3, 4]
SHAPE = (8, 8, 6)
SUBJECTS = ["s1", "s2"]
HEADER = ["subject", "t2", "mra", "label", "split"]


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    """Write a NIfTI volume, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)


def image(seed: int = 0) -> np.ndarray:
    """A float32 intensity volume, different for each seed."""
    return np.random.default_rng(seed).normal(100.0, 10.0, SHAPE).astype(np.float32)


def label() -> np.ndarray:
    """A uint8 label volume using the values 0..3."""
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[2:6, 2:6, 1:5] = np.arange(5).repeat(2)[:4]
    return data


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a manifest CSV and return its path."""
    lines = [",".join(header), *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def default_rows() -> list[list[str]]:
    """The cohort's rows, with paths relative to the CSV's folder."""
    return [
        [s, f"{s}/t2.nii.gz", f"{s}/mra.nii.gz", f"{s}/label.nii.gz", split]
        for s, split in zip(SUBJECTS, ["train", "val"], strict=True)
    ]


def write_cohort(root: Path) -> Path:
    """Write a valid two-subject cohort (channels t2 and mra, labels 0..4); return its CSV."""
    for index, subject in enumerate(SUBJECTS):
        write_volume(root / subject / "t2.nii.gz", image(2 * index))
        write_volume(root / subject / "mra.nii.gz", image(2 * index + 1))
        write_volume(root / subject / "label.nii.gz", label())
    return write_csv(root / "manifest.csv", HEADER, default_rows())


def rewrite_csv(change: Callable[[list[list[str]]], list[list[str]]]) -> Callable[[Path], None]:
    """A breaker that rewrites the cohort's CSV with changed rows."""
    return lambda root: write_csv(root / "manifest.csv", HEADER, change(default_rows()))


def set_cell(row: int, column: str, value: str) -> Callable[[Path], None]:
    """A breaker that sets one cell of the cohort's CSV."""

    def change(rows: list[list[str]]) -> list[list[str]]:
        rows[row][HEADER.index(column)] = value
        return rows

    return rewrite_csv(change)


def assert_one_problem(manifest: Path, fragments: Sequence[str]) -> None:
    """Loading ``manifest`` raises one ManifestError with one problem holding ``fragments``."""
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"Manifest '{manifest}': ")
    for fragment in fragments:
        assert fragment in message
