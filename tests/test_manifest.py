"""Tests for datamodules.manifest: reading a manifest CSV into records, and its structure errors.

Each structure test writes a valid manifest and breaks one thing; the file checks are in
test_manifest_checks.py, the fingerprint in test_fingerprint.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from datamodules.manifest import (
    ManifestError,
    SubjectRecord,
    load_manifest,
    manifest_fingerprint,
    read_manifest,
    validate_manifest,
)
from tests.manifest_cohort import (
    CHANNELS,
    HEADER,
    LABEL_VALUES,
    SUBJECTS,
    assert_one_problem,
    default_rows,
    set_cell,
    write_csv,
)

STRUCTURE_CASES = {
    "duplicate subject IDs": (
        set_cell(1, "subject", "s1"),
        ["manifest.csv", "duplicate subject IDs: ['s1']"],
    ),
    "subject ID with a path": (
        set_cell(1, "subject", "../../escaped"),
        [
            "manifest.csv",
            "row 2 (subject '../../escaped'): subject ID '../../escaped' is not a safe",
        ],
    ),
    "absolute subject ID": (
        set_cell(0, "subject", "/data/abs"),
        ["manifest.csv", "subject ID '/data/abs' is not a safe file name"],
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
    ("breaker", "fragments"), list(STRUCTURE_CASES.values()), ids=list(STRUCTURE_CASES)
)
def test_each_bad_structure_raises_one_error_naming_it(
    manifest: Path, breaker: Callable[[Path], None], fragments: list[str]
) -> None:
    breaker(manifest.parent)
    assert_one_problem(manifest, fragments)


def test_manifest_error_is_a_value_error() -> None:
    assert issubclass(ManifestError, ValueError)


def test_split_modules_stay_importable_from_manifest() -> None:
    # brain.py and the experiments import all five names from datamodules.manifest.
    from datamodules.fingerprint import manifest_fingerprint as fingerprint
    from datamodules.manifest_checks import validate_manifest as validate
    from datamodules.manifest_records import ManifestError as Error
    from datamodules.manifest_records import SubjectRecord as Record

    assert (manifest_fingerprint, validate_manifest) == (fingerprint, validate)
    assert (ManifestError, SubjectRecord) == (Error, Record)


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


def test_labels_can_be_omitted_when_not_required(manifest: Path) -> None:
    rows = [row[:3] for row in default_rows()]
    write_csv(manifest, ["subject", "t2", "mra"], rows)

    records = load_manifest(manifest, CHANNELS, LABEL_VALUES, require_label=False)

    assert [record.label for record in records] == [None, None]
    with pytest.raises(ManifestError, match=r"missing columns \['label'\]"):
        read_manifest(manifest, CHANNELS)


@pytest.mark.parametrize("channels", [[], ["t2", "t2"], ["t2", "label"], "t2"])
def test_bad_channel_lists_are_rejected(manifest: Path, channels: list[str]) -> None:
    with pytest.raises(ValueError, match="channels must"):
        read_manifest(manifest, channels)
