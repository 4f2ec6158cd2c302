"""Tests for datamodules.manifest_checks: each test writes a valid cohort and breaks one file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datamodules.manifest import ManifestError, SubjectRecord, load_manifest, read_manifest
from datamodules.manifest_checks import validate_manifest
from tests.manifest_cohort import (
    CHANNELS,
    LABEL_VALUES,
    SHAPE,
    assert_one_problem,
    default_rows,
    image,
    label,
    set_cell,
    write_csv,
    write_volume,
)

# --------------------------------------------------------------------------- breakers


def truncate(path: Path, keep: float) -> None:
    """Cut a file to a fraction of its bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def with_voxels(values: list[float], dtype: type = np.float32) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        data = label().astype(dtype)
        data.flat[: len(values)] = values
        return data

    return make


def write_mgh_channel(root: Path) -> None:
    """Point s1's t2 cell at a volume that nibabel reads, but not as NIfTI."""
    nib.save(nib.MGHImage(image(), np.eye(4)), root / "s1" / "t2.mgz")
    set_cell(0, "t2", "s1/t2.mgz")(root)


FILE_CASES = {
    "missing file": (
        lambda root: (root / "s2" / "mra.nii.gz").unlink(),
        ["s2", "s2/mra.nii.gz", "file does not exist"],
    ),
    "truncated voxel data": (
        lambda root: truncate(root / "s1" / "t2.nii.gz", keep=0.9),
        ["s1", "s1/t2.nii.gz", "is not a readable NIfTI file (truncated"],
    ),
    "truncated header": (
        lambda root: truncate(root / "s2" / "label.nii.gz", keep=0.1),
        ["s2", "s2/label.nii.gz", "is not a readable NIfTI file"],
    ),
    "random bytes": (
        lambda root: (root / "s1" / "label.nii.gz").write_bytes(
            np.random.default_rng(0).bytes(600)
        ),
        ["s1", "s1/label.nii.gz", "is not a readable NIfTI file"],
    ),
    "not NIfTI": (
        write_mgh_channel,
        ["s1", "s1/t2.mgz", "is not a NIfTI file (nibabel reads it as MGHImage)"],
    ),
    "shape mismatch": (
        lambda root: write_volume(root / "s2" / "t2.nii.gz", image()[:, :, :5]),
        ["s2", "s2/t2.nii.gz", "shape (8, 8, 5) differs from the label's shape (8, 8, 6)"],
    ),
    "affine mismatch": (
        lambda root: write_volume(root / "s1" / "mra.nii.gz", image(), np.diag([2, 1, 1, 1])),
        ["s1", "s1/mra.nii.gz", "affine differs from the label's affine"],
    ),
    "4-D volume": (
        lambda root: write_volume(root / "s2" / "mra.nii.gz", np.zeros((*SHAPE, 2), np.float32)),
        ["s2", "s2/mra.nii.gz", "expected a 3-D volume"],
    ),
    "non-integer label": (
        lambda root: write_volume(root / "s2" / "label.nii.gz", with_voxels([0.5])()),
        ["s2", "s2/label.nii.gz", "label values are not integers (e.g. 0.5)"],
    ),
    "label outside class map": (
        lambda root: write_volume(root / "s1" / "label.nii.gz", with_voxels([7], np.uint8)()),
        ["s1", "s1/label.nii.gz", "label values [7] are not in the class map {0, 1, 2, 3, 4}"],
    ),
    "NaN intensities": (
        lambda root: write_volume(root / "s1" / "t2.nii.gz", with_voxels([np.nan] * 3)()),
        ["s1", "s1/t2.nii.gz", "contains 3 NaN and 0 Inf values"],
    ),
    "constant channel": (
        lambda root: write_volume(root / "s2" / "t2.nii.gz", np.zeros(SHAPE, np.float32)),
        ["s2", "s2/t2.nii.gz", "has the same value (0) in every voxel"],
    ),
    "Inf intensities": (
        lambda root: write_volume(root / "s2" / "mra.nii.gz", with_voxels([np.inf, -np.inf])()),
        ["s2", "s2/mra.nii.gz", "contains 0 NaN and 2 Inf values"],
    ),
}


@pytest.mark.parametrize(("breaker", "fragments"), list(FILE_CASES.values()), ids=list(FILE_CASES))
def test_each_bad_file_raises_one_error_naming_it(
    manifest: Path, breaker: Callable[[Path], None], fragments: list[str]
) -> None:
    breaker(manifest.parent)
    assert_one_problem(manifest, fragments)


def test_file_problem_line_has_documented_form(manifest: Path) -> None:
    write_volume(manifest.parent / "s1" / "label.nii.gz", with_voxels([7], np.uint8)())
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)
    assert str(raised.value).splitlines() == [
        f"Manifest '{manifest}': subject 's1', file 's1/label.nii.gz': "
        "label values [7] are not in the class map {0, 1, 2, 3, 4}",
    ]


# --------------------------------------------------------------------------- valid input


def test_whole_number_labels_in_a_float_dtype_are_accepted(manifest: Path) -> None:
    write_volume(manifest.parent / "s1" / "label.nii.gz", label().astype(np.float32))

    assert len(load_manifest(manifest, CHANNELS, LABEL_VALUES)) == 2


def test_trailing_singleton_dimension_is_accepted(manifest: Path) -> None:
    write_volume(manifest.parent / "s1" / "t2.nii.gz", image()[..., np.newaxis])

    assert len(load_manifest(manifest, CHANNELS, LABEL_VALUES)) == 2


def test_channels_are_compared_with_first_channel_without_label(manifest: Path) -> None:
    write_csv(manifest, ["subject", "t2", "mra"], [row[:3] for row in default_rows()])
    write_volume(manifest.parent / "s2" / "mra.nii.gz", image()[:, :, :5])

    with pytest.raises(ManifestError, match=r"differs from the t2 channel's shape \(8, 8, 6\)"):
        load_manifest(manifest, CHANNELS, LABEL_VALUES, require_label=False)


# --------------------------------------------------------------------------- reporting


def test_all_problems_are_reported_together(manifest: Path) -> None:
    root = manifest.parent
    (root / "s1" / "mra.nii.gz").unlink()
    write_volume(root / "s2" / "label.nii.gz", with_voxels([7], np.uint8)())
    write_volume(root / "s2" / "t2.nii.gz", with_voxels([np.nan])())

    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)

    lines = str(raised.value).splitlines()
    assert lines[0] == (
        f"Manifest '{manifest}' has 3 problems, the first: "
        "subject 's1', file 's1/mra.nii.gz': file does not exist"
    )
    assert lines[1:] == [
        "  subject 's1', file 's1/mra.nii.gz': file does not exist",
        "  subject 's2', file 's2/label.nii.gz': "
        "label values [7] are not in the class map {0, 1, 2, 3, 4}",
        "  subject 's2', file 's2/t2.nii.gz': contains 1 NaN and 0 Inf values",
    ]


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    records = [
        SubjectRecord(f"s{i}", {"t2": tmp_path / f"s{i}.nii.gz"}, None, None) for i in range(25)
    ]

    with pytest.raises(ManifestError) as raised:
        validate_manifest(records, LABEL_VALUES)

    lines = str(raised.value).splitlines()
    assert lines[0].startswith("Manifest has 25 problems, the first: subject 's0', file ")
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 5 more"


def age(paths: list[Path], seconds: int) -> None:
    """Set the files' modification time to ``seconds`` after the epoch: settled long ago."""
    for path in paths:
        os.utime(path, ns=(0, seconds * 10**9))


def test_settled_files_are_read_once_and_rewritten_ones_again(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ablation checks one cohort per variant: each file is read once, until it changes."""
    records = read_manifest(manifest, CHANNELS)
    files = [path for record in records for path in (*record.channels.values(), record.label)]
    reads: list[Path] = []
    real_load = nib.load
    monkeypatch.setattr(nib, "load", lambda path, *a, **k: reads.append(path) or real_load(path))
    validate_manifest(records, LABEL_VALUES, csv_path=manifest)
    validate_manifest(records, LABEL_VALUES, csv_path=manifest)
    assert len(reads) == 2 * len(files)  # just written: read every time
    age(files, 1)
    validate_manifest(records, LABEL_VALUES, csv_path=manifest)
    validate_manifest(records, LABEL_VALUES, csv_path=manifest)
    assert len(reads) == 3 * len(files)  # settled: read once
    bad = label()
    bad[0, 0, 0] = 9
    write_volume(records[0].label, bad)
    age([records[0].label], 2)  # written anew, and settled again
    with pytest.raises(ManifestError, match="9"):
        validate_manifest(records, LABEL_VALUES, csv_path=manifest)
    assert reads[3 * len(files) :] == [records[0].label]
