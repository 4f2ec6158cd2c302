"""Read a manifest CSV of NIfTI volumes into subject records before any training starts.

A manifest lists one subject per row: a ``subject`` column, one column per input channel, a
``label`` column (optional where labels are not needed, e.g. for prediction) and an optional
``split`` column (``train``, ``val`` or ``test``). Paths are relative to the CSV's folder or
absolute.

This module reads and checks the CSV's structure (:func:`read_manifest`); opening the files is
:mod:`datamodules.manifest_checks`, the data digest :mod:`datamodules.fingerprint`, the record
type and error :mod:`datamodules.manifest_records`. All their public names are importable from
here too, so ``from datamodules.manifest import ...`` is the one entry point.

Example:
    >>> from datamodules.phantom import write_phantom
    >>> folder = getfixture("tmp_path")
    >>> csv_path = write_phantom(folder, n_subjects=2, shape=(16, 16, 16))
    >>> records = load_manifest(csv_path, ["cisternography", "angiography"], range(5))
    >>> [record.subject for record in records]
    ['phantom_000', 'phantom_001']
    >>> records[0].channels["angiography"] == folder / "phantom_000" / "angiography.nii.gz"
    True
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from datamodules.fingerprint import manifest_fingerprint
from datamodules.manifest_checks import validate_manifest
from datamodules.manifest_records import (
    LABEL_COLUMN,
    SPLIT_COLUMN,
    SPLITS,
    SUBJECT_COLUMN,
    ManifestError,
    SubjectRecord,
    absolute_path,
    describe_error,
    raise_manifest_error,
)

# Subject IDs become file names: no path separators, no leading dot or dash.
SAFE_SUBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CSV_READ_ERRORS = (OSError, ValueError, csv.Error, pd.errors.ParserError, pd.errors.ParserWarning)


def read_manifest(
    csv_path: str | Path, channels: Sequence[str], *, require_label: bool = True
) -> list[SubjectRecord]:
    """Parse a manifest CSV and check its structure, without opening any NIfTI file.

    Args:
        csv_path: The manifest CSV.
        channels: Names of the input-channel columns, in the order the model expects them.
        require_label: Whether the ``label`` column must exist and be filled in every row.

    Returns:
        One record per row, in file order, with absolute paths.

    Raises:
        ManifestError: The CSV is missing or unreadable, lacks a required column, has no rows,
            has empty required cells, duplicate subject IDs or unknown split values.
        ValueError: ``channels`` is empty, repeats a name or uses a reserved column name.
    """
    check_channel_names(channels)
    csv_path = Path(csv_path)
    table = _read_table(csv_path)
    required = [SUBJECT_COLUMN, *channels] + ([LABEL_COLUMN] if require_label else [])
    missing = [column for column in required if column not in table.columns]
    if missing:
        found = list(table.columns)
        raise_manifest_error(csv_path, [f"missing columns {missing} (found: {found})"])
    if table.empty:
        raise_manifest_error(csv_path, ["has no rows (only a header)"])

    rows = [{key: _cell(value) for key, value in row.items()} for row in table.to_dict("records")]
    problems = _empty_cell_problems(rows, required)
    problems += _duplicate_subject_problems(rows)
    problems += _subject_name_problems(rows)
    if SPLIT_COLUMN in table.columns:
        problems += _split_problems(rows)
    if problems:
        raise_manifest_error(csv_path, problems)

    csv_dir = absolute_path(csv_path).parent
    return [_record_from_row(row, channels, csv_dir) for row in rows]


def load_manifest(
    csv_path: str | Path,
    channels: Sequence[str],
    label_values: Collection[int],
    *,
    require_label: bool = True,
) -> list[SubjectRecord]:
    """Read a manifest and check every file it references.

    Args:
        csv_path: The manifest CSV.
        channels: Names of the input-channel columns, in model order.
        label_values: The class map's label values, background 0 included.
        require_label: Whether every row must name a label map.

    Returns:
        One validated record per row, in file order.

    Raises:
        ManifestError: The manifest or one of its files is unusable.
    """
    records = read_manifest(csv_path, channels, require_label=require_label)
    validate_manifest(records, label_values, csv_path=csv_path)
    return records


# --------------------------------------------------------------------------- CSV structure


def check_channel_names(channels: Sequence[str]) -> None:
    """Reject channel lists that cannot name distinct manifest columns (``ValueError``)."""
    if isinstance(channels, str) or not channels:
        raise ValueError(f"channels must be a non-empty list of column names, got {channels!r}")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels must not repeat a name, got {list(channels)}")
    reserved = sorted({SUBJECT_COLUMN, LABEL_COLUMN, SPLIT_COLUMN} & set(channels))
    if reserved:
        raise ValueError(
            f"channels must not use the reserved column names {reserved}, got {list(channels)}"
        )


def _read_table(csv_path: Path) -> pd.DataFrame:
    """Read the CSV as text cells with stripped column names, wrapping pandas' errors."""
    if not csv_path.is_file():
        problem = "file does not exist" if not csv_path.exists() else "is not a regular file"
        raise_manifest_error(csv_path, [problem])
    try:
        with warnings.catch_warnings():
            # pandas only warns when a row has more cells than the header, then drops them.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Text cells only: "NA" or "001" are subject IDs, not missing values or numbers.
            table = pd.read_csv(
                csv_path,
                dtype=str,
                keep_default_na=False,
                index_col=False,
                encoding="utf-8-sig",
            )
    except pd.errors.EmptyDataError:
        raise_manifest_error(csv_path, ["is empty (no header and no rows)"])
    except _CSV_READ_ERRORS as error:
        raise_manifest_error(csv_path, [f"is not a readable CSV file ({describe_error(error)})"])
    table.columns = [str(column).strip() for column in table.columns]
    return table


def _cell(value: object) -> str:
    """Return a cell as stripped text, with missing cells (short rows) as ''."""
    return "" if pd.isna(value) else str(value).strip()


def _row_name(index: int, row: dict[str, str]) -> str:
    """Name a row by its 1-based data-row number and, when known, its subject."""
    subject = row.get(SUBJECT_COLUMN, "")
    return f"row {index + 1} (subject '{subject}')" if subject else f"row {index + 1}"


def _empty_cell_problems(rows: Sequence[dict[str, str]], required: Sequence[str]) -> list[str]:
    """List every empty cell in a required column."""
    return [
        f"{_row_name(index, row)}: column '{column}' is empty"
        for index, row in enumerate(rows)
        for column in required
        if not row[column]
    ]


def _duplicate_subject_problems(rows: Sequence[dict[str, str]]) -> list[str]:
    """Report subject IDs that occur more than once (they would collide in outputs and splits)."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for row in rows:
        subject = row[SUBJECT_COLUMN]
        if subject and subject in seen and subject not in duplicates:
            duplicates.append(subject)
        seen.add(subject)
    return [f"duplicate subject IDs: {duplicates}"] if duplicates else []


def _subject_name_problems(rows: Sequence[dict[str, str]]) -> list[str]:
    """Report subject IDs that are unsafe as file names.

    Outputs are named after subjects (``<subject>_label.nii.gz``, ``prediction_<subject>.png``),
    so an ID such as ``../escaped`` or ``/data/abs`` would write outside the output folder.
    """
    return [
        f"{_row_name(index, row)}: subject ID '{row[SUBJECT_COLUMN]}' is not a safe file name; "
        "use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        for index, row in enumerate(rows)
        if row[SUBJECT_COLUMN] and not SAFE_SUBJECT_ID.fullmatch(row[SUBJECT_COLUMN])
    ]


def _split_problems(rows: Sequence[dict[str, str]]) -> list[str]:
    """Report split cells that are empty or not one of :data:`SPLITS`."""
    expected = f"expected one of {list(SPLITS)}"
    problems = []
    for index, row in enumerate(rows):
        value = row[SPLIT_COLUMN]
        if not value:
            problems.append(
                f"{_row_name(index, row)}: column '{SPLIT_COLUMN}' is empty; {expected}"
            )
        elif value not in SPLITS:
            problems.append(
                f"{_row_name(index, row)}: column '{SPLIT_COLUMN}' has '{value}'; {expected}"
            )
    return problems


def _record_from_row(row: dict[str, str], channels: Sequence[str], csv_dir: Path) -> SubjectRecord:
    """Build a record from a checked row, resolving paths against the CSV's folder."""
    label = row.get(LABEL_COLUMN, "")
    return SubjectRecord(
        subject=row[SUBJECT_COLUMN],
        channels={channel: _resolve(row[channel], csv_dir) for channel in channels},
        label=_resolve(label, csv_dir) if label else None,
        split=row.get(SPLIT_COLUMN) or None,
    )


def _resolve(cell: str, csv_dir: Path) -> Path:
    """Resolve a manifest path cell: absolute as is, relative to the CSV's folder otherwise."""
    return absolute_path(csv_dir / cell)


__all__ = [
    "LABEL_COLUMN",
    "SPLITS",
    "SPLIT_COLUMN",
    "SUBJECT_COLUMN",
    "ManifestError",
    "SubjectRecord",
    "load_manifest",
    "manifest_fingerprint",
    "read_manifest",
    "validate_manifest",
]
