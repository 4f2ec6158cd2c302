"""Tests for datamodules.manifest: each test writes a valid manifest and breaks one thing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datamodules.manifest import (
    ManifestError,
    SubjectRecord,
    load_manifest,
    manifest_fingerprint,
    read_manifest,
    validate_manifest,
)

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
    return np.random.default_rng(seed).normal(100.0, 10.0, SHAPE).astype(np.float32)


def label() -> np.ndarray:
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[2:6, 2:6, 1:5] = np.arange(5).repeat(2)[:4]
    return data


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def default_rows() -> list[list[str]]:
    return [
        [s, f"{s}/t2.nii.gz", f"{s}/mra.nii.gz", f"{s}/label.nii.gz", split]
        for s, split in zip(SUBJECTS, ["train", "val"], strict=True)
    ]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A valid two-subject manifest with channels t2 and mra and labels 0..4."""
    for index, subject in enumerate(SUBJECTS):
        write_volume(tmp_path / subject / "t2.nii.gz", image(2 * index))
        write_volume(tmp_path / subject / "mra.nii.gz", image(2 * index + 1))
        write_volume(tmp_path / subject / "label.nii.gz", label())
    return write_csv(tmp_path / "manifest.csv", HEADER, default_rows())


# --------------------------------------------------------------------------- breakers


def truncate(path: Path, keep: float) -> None:
    """Cut a file to a fraction of its bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def rewrite_csv(change: Callable[[list[list[str]]], list[list[str]]]) -> Callable[[Path], None]:
    return lambda root: write_csv(root / "manifest.csv", HEADER, change(default_rows()))


def set_cell(row: int, column: str, value: str) -> Callable[[Path], None]:
    def change(rows: list[list[str]]) -> list[list[str]]:
        rows[row][HEADER.index(column)] = value
        return rows

    return rewrite_csv(change)


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
    "Inf intensities": (
        lambda root: write_volume(root / "s2" / "mra.nii.gz", with_voxels([np.inf, -np.inf])()),
        ["s2", "s2/mra.nii.gz", "contains 0 NaN and 2 Inf values"],
    ),
}

STRUCTURE_CASES = {
    "duplicate subject IDs": (
        set_cell(1, "subject", "s1"),
        ["manifest.csv", "duplicate subject IDs: ['s1']"],
    ),
    "missing column": (
        lambda root: write_csv(
            root / "manifest.csv",
            ["subject", "t2", "label"],
            [[r[0], r[1], r[3]] for r in default_rows()],
        ),
        ["manifest.csv", "missing columns ['mra'] (found: ['subject', 't2', 'label'])"],
    ),
    "header only": (
        lambda root: write_csv(root / "manifest.csv", HEADER, []),
        ["manifest.csv", "has no rows"],
    ),
    "bad split value": (
        set_cell(1, "split", "training"),
        ["manifest.csv", "row 2 (subject 's2')", "column 'split' has 'training'"],
    ),
    "empty split cell": (
        set_cell(0, "split", ""),
        ["manifest.csv", "row 1 (subject 's1')", "column 'split' is empty"],
    ),
    "empty channel cell": (
        set_cell(1, "mra", ""),
        ["manifest.csv", "row 2 (subject 's2')", "column 'mra' is empty"],
    ),
    "missing CSV": (
        lambda root: (root / "manifest.csv").unlink(),
        ["manifest.csv", "file does not exist"],
    ),
    "empty CSV": (
        lambda root: (root / "manifest.csv").write_text(""),
        ["manifest.csv", "is empty"],
    ),
    "ragged CSV": (
        lambda root: (root / "manifest.csv").write_text(
            "subject,t2,mra,label\na,b,c,d\ne,f,g,h,i\n"
        ),
        ["manifest.csv", "is not a readable CSV file"],
    ),
}


@pytest.mark.parametrize(
    ("breaker", "fragments"),
    list(FILE_CASES.values()) + list(STRUCTURE_CASES.values()),
    ids=list(FILE_CASES) + list(STRUCTURE_CASES),
)
def test_each_bad_input_raises_one_error_naming_it(
    manifest: Path, breaker: Callable[[Path], None], fragments: list[str]
) -> None:
    breaker(manifest.parent)
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)
    message = str(raised.value)
    assert message.splitlines()[0].endswith("has 1 problem:")
    for fragment in fragments:
        assert fragment in message


def test_file_problem_line_has_documented_form(manifest: Path) -> None:
    write_volume(manifest.parent / "s1" / "label.nii.gz", with_voxels([7], np.uint8)())
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)
    assert str(raised.value).splitlines() == [
        f"Manifest '{manifest}' has 1 problem:",
        "  subject 's1', file 's1/label.nii.gz': "
        "label values [7] are not in the class map {0, 1, 2, 3, 4}",
    ]


def test_manifest_error_is_a_value_error() -> None:
    assert issubclass(ManifestError, ValueError)


# --------------------------------------------------------------------------- valid input


def test_valid_manifest_returns_absolute_existing_paths_in_channel_order(manifest: Path) -> None:
    records = load_manifest(manifest, ["mra", "t2"], LABEL_VALUES)

    assert [record.subject for record in records] == SUBJECTS
    assert [record.split for record in records] == ["train", "val"]
    for record in records:
        assert list(record.channels) == ["mra", "t2"]
        paths = [*record.channels.values(), record.label]
        assert all(path is not None and path.is_absolute() and path.is_file() for path in paths)
        assert record.channels["t2"] == manifest.parent / record.subject / "t2.nii.gz"
        assert record.label == manifest.parent / record.subject / "label.nii.gz"


def test_relative_and_absolute_paths_both_resolve(manifest: Path) -> None:
    root = manifest.parent
    nested = root / "lists" / "manifest.csv"
    nested.parent.mkdir()
    write_csv(
        nested,
        ["subject", "t2", "mra", "label"],
        [
            ["s1", str(root / "s1/t2.nii.gz"), str(root / "s1/mra.nii.gz"), "../s1/label.nii.gz"],
            ["s2", "../s2/t2.nii.gz", "../s2/mra.nii.gz", str(root / "s2/label.nii.gz")],
        ],
    )

    records = load_manifest(nested, CHANNELS, LABEL_VALUES)

    assert [r.channels["t2"] for r in records] == [root / s / "t2.nii.gz" for s in SUBJECTS]
    assert [r.label for r in records] == [root / s / "label.nii.gz" for s in SUBJECTS]
    assert all(r.split is None for r in records)


def test_trailing_singleton_dimension_is_accepted(manifest: Path) -> None:
    write_volume(manifest.parent / "s1" / "t2.nii.gz", image()[..., np.newaxis])

    assert len(load_manifest(manifest, CHANNELS, LABEL_VALUES)) == 2


def test_labels_can_be_omitted_when_not_required(manifest: Path) -> None:
    rows = [row[:3] for row in default_rows()]
    write_csv(manifest, ["subject", "t2", "mra"], rows)

    records = load_manifest(manifest, CHANNELS, LABEL_VALUES, require_label=False)

    assert [record.label for record in records] == [None, None]
    with pytest.raises(ManifestError, match=r"missing columns \['label'\]"):
        read_manifest(manifest, CHANNELS)


def test_channels_are_compared_with_first_channel_without_label(manifest: Path) -> None:
    write_csv(manifest, ["subject", "t2", "mra"], [row[:3] for row in default_rows()])
    write_volume(manifest.parent / "s2" / "mra.nii.gz", image()[:, :, :5])

    with pytest.raises(ManifestError, match=r"differs from the t2 channel's shape \(8, 8, 6\)"):
        load_manifest(manifest, CHANNELS, LABEL_VALUES, require_label=False)


@pytest.mark.parametrize("channels", [[], ["t2", "t2"], ["t2", "label"], "t2"])
def test_bad_channel_lists_are_rejected(manifest: Path, channels: list[str]) -> None:
    with pytest.raises(ValueError, match="channels must"):
        read_manifest(manifest, channels)


# --------------------------------------------------------------------------- reporting


def test_all_problems_are_reported_together(manifest: Path) -> None:
    root = manifest.parent
    (root / "s1" / "mra.nii.gz").unlink()
    write_volume(root / "s2" / "label.nii.gz", with_voxels([7], np.uint8)())
    write_volume(root / "s2" / "t2.nii.gz", with_voxels([np.nan])())

    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest, CHANNELS, LABEL_VALUES)

    lines = str(raised.value).splitlines()
    assert lines[0] == f"Manifest '{manifest}' has 3 problems:"
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
    assert lines[0] == "Manifest has 25 problems:"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 5 more"


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_tracks_file_bytes(manifest: Path) -> None:
    records = read_manifest(manifest, CHANNELS)
    first = manifest_fingerprint(manifest, records)

    assert len(first) == 16
    assert int(first, 16) >= 0
    assert manifest_fingerprint(manifest, records) == first

    write_volume(manifest.parent / "s2" / "mra.nii.gz", image(seed=99))
    assert manifest_fingerprint(manifest, records) != first


def test_fingerprint_tracks_csv_bytes(manifest: Path) -> None:
    records = read_manifest(manifest, CHANNELS)
    before = manifest_fingerprint(manifest, records)

    set_cell(1, "split", "test")(manifest.parent)

    assert manifest_fingerprint(manifest, records) != before


def test_fingerprint_names_unreadable_file(manifest: Path) -> None:
    records = read_manifest(manifest, CHANNELS)
    (manifest.parent / "s2" / "t2.nii.gz").unlink()

    with pytest.raises(ManifestError, match=r"subject 's2', file 's2/t2.nii.gz'"):
        manifest_fingerprint(manifest, records)
