"""Load and check a manifest CSV of NIfTI volumes before any training starts.

A manifest lists one subject per row: a ``subject`` column, one column per input channel, a
``label`` column (optional where labels are not needed, e.g. for prediction) and an optional
``split`` column (``train``, ``val`` or ``test``). Paths are relative to the CSV's folder or
absolute.

Bad data should fail in seconds with a message that says what to fix, not an hour into training
with a traceback from inside a loader. So every problem found is collected and raised as one
:class:`ManifestError` that names the subject, the file and the problem in plain words.

Example:
    >>> records = load_manifest("data/manifest.csv", ["t2", "mra"], range(5))  # doctest: +SKIP
    >>> records[0].channels["t2"]  # doctest: +SKIP
    PosixPath('/abs/data/s1/t2.nii.gz')
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import warnings
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

SUBJECT_COLUMN = "subject"
LABEL_COLUMN = "label"
SPLIT_COLUMN = "split"
SPLITS = ("train", "val", "test")

# Voxel sizes are stored as float32 in NIfTI headers; 1e-3 mm absorbs round-off, not real shifts.
AFFINE_ATOL = 1e-3
MAX_LISTED_PROBLEMS = 20
MAX_LISTED_VALUES = 10
_CHUNK_BYTES = 1 << 20

_CSV_READ_ERRORS = (OSError, ValueError, csv.Error, pd.errors.ParserError, pd.errors.ParserWarning)
_NIFTI_READ_ERRORS = (
    ImageFileError,
    HeaderDataError,
    OSError,
    EOFError,
    zlib.error,
    ValueError,
)


class ManifestError(ValueError):
    """A manifest or one of its files is unusable; the message names subject, file and problem."""


@dataclass(frozen=True)
class SubjectRecord:
    """One manifest row with absolute paths.

    Attributes:
        subject: The subject ID, unique within the manifest.
        channels: Channel name -> absolute path, in the order the caller asked for.
        label: Absolute path of the label map, or None where labels are not required.
        split: ``train``, ``val`` or ``test``; None when the manifest has no split column.
    """

    subject: str
    channels: dict[str, Path]
    label: Path | None
    split: str | None


class _UnusableFileError(Exception):
    """A file cannot be checked any further (missing, unreadable, not 3-D)."""


@dataclass(frozen=True, eq=False)
class _Geometry:
    """Spatial shape and affine of a volume, kept without its voxels to bound memory."""

    shape: tuple[int, ...]
    affine: np.ndarray


# --------------------------------------------------------------------------- public API


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
    _check_channel_names(channels)
    csv_path = Path(csv_path)
    table = _read_table(csv_path)
    required = [SUBJECT_COLUMN, *channels] + ([LABEL_COLUMN] if require_label else [])
    missing = [column for column in required if column not in table.columns]
    if missing:
        found = list(table.columns)
        _fail(csv_path, [f"missing columns {missing} (found: {found})"])
    if table.empty:
        _fail(csv_path, ["has no rows (only a header)"])

    rows = [{key: _cell(value) for key, value in row.items()} for row in table.to_dict("records")]
    problems = _empty_cell_problems(rows, required)
    problems += _duplicate_subject_problems(rows)
    if SPLIT_COLUMN in table.columns:
        problems += _split_problems(rows)
    if problems:
        _fail(csv_path, problems)

    csv_dir = _absolute(csv_path).parent
    return [_record_from_row(row, channels, csv_dir) for row in rows]


def validate_manifest(
    records: Sequence[SubjectRecord],
    label_values: Collection[int],
    *,
    csv_path: str | Path | None = None,
) -> None:
    """Open every file of every record and check that training can use it.

    Checks that each file exists and is a readable NIfTI volume, is 3-D (a trailing 4th dimension
    of size 1 is accepted), shares the label's shape and affine, holds only finite intensities,
    and, for labels, holds integers from ``label_values``. Without a label, channels are compared
    with the first channel instead. Files are read one at a time to bound memory.

    Args:
        records: Records from :func:`read_manifest`.
        label_values: The class map's label values, background 0 included.
        csv_path: The manifest, named in the message; file paths are shown relative to its folder.

    Raises:
        ManifestError: One error listing every problem found, over all subjects and files.
    """
    allowed = frozenset(int(value) for value in label_values)
    base = _absolute(Path(csv_path)).parent if csv_path is not None else None
    problems = [
        f"subject '{record.subject}', file '{_display(path, base)}': {problem}"
        for record in records
        for path, problem in _subject_problems(record, allowed)
    ]
    if problems:
        _fail(Path(csv_path) if csv_path is not None else None, problems)


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


def manifest_fingerprint(csv_path: str | Path, records: Sequence[SubjectRecord]) -> str:
    """Digest the manifest and every file it references, to tag a run with the data it saw.

    Args:
        csv_path: The manifest CSV.
        records: Its records; every channel and label file is hashed, in record order.

    Returns:
        The first 16 hex characters of a SHA-256 over the CSV and all referenced files.

    Raises:
        ManifestError: The CSV or a referenced file cannot be read.
    """
    csv_path = Path(csv_path)
    digest = hashlib.sha256()
    try:
        digest.update(_file_digest(csv_path))
    except OSError as error:
        _fail(csv_path, [f"cannot be read for the fingerprint ({_describe(error)})"])
    base = _absolute(csv_path).parent
    for record in records:
        for _, path in _record_files(record):
            try:
                digest.update(_file_digest(path))
            except OSError as error:
                problem = f"cannot be read for the fingerprint ({_describe(error)})"
                _fail(
                    csv_path,
                    [f"subject '{record.subject}', file '{_display(path, base)}': {problem}"],
                )
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- CSV structure


def _check_channel_names(channels: Sequence[str]) -> None:
    """Reject channel lists that cannot name distinct manifest columns (a caller bug)."""
    if isinstance(channels, str) or not channels:
        raise ValueError(f"channels must be a non-empty list of column names, got {channels!r}")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels must not repeat a name, got {list(channels)}")
    reserved = sorted({SUBJECT_COLUMN, LABEL_COLUMN, SPLIT_COLUMN} & set(channels))
    if reserved:
        raise ValueError(f"channels must not use the reserved column names {reserved}")


def _read_table(csv_path: Path) -> pd.DataFrame:
    """Read the CSV as text cells with stripped column names, wrapping pandas' errors."""
    if not csv_path.is_file():
        problem = "file does not exist" if not csv_path.exists() else "is not a regular file"
        _fail(csv_path, [problem])
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
        _fail(csv_path, ["is empty (no header and no rows)"])
    except _CSV_READ_ERRORS as error:
        _fail(csv_path, [f"is not a readable CSV file ({_describe(error)})"])
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


# --------------------------------------------------------------------------- NIfTI checks


def _subject_problems(
    record: SubjectRecord, label_values: frozenset[int]
) -> list[tuple[Path, str]]:
    """Check every file of one subject against the first one (the label when there is one)."""
    files = _record_files(record)
    reference_name = "the label's" if record.label is not None else f"the {files[0][0]} channel's"
    reference: _Geometry | None = None
    problems: list[tuple[Path, str]] = []
    for index, (role, path) in enumerate(files):
        try:
            geometry, file_problems = _file_problems(
                path, label_values if role == LABEL_COLUMN else None
            )
        except _UnusableFileError as error:
            problems.append((path, str(error)))
            continue
        if index == 0:
            reference = geometry
        elif reference is not None:
            file_problems = _geometry_problems(geometry, reference, reference_name) + file_problems
        problems.extend((path, problem) for problem in file_problems)
    return problems


def _record_files(record: SubjectRecord) -> list[tuple[str, Path]]:
    """List a record's files as (role, path), the label first so it is the reference."""
    label = [(LABEL_COLUMN, record.label)] if record.label is not None else []
    return label + list(record.channels.items())


def _file_problems(path: Path, label_values: frozenset[int] | None) -> tuple[_Geometry, list[str]]:
    """Read one volume and check its voxels; its data is freed when this returns.

    Args:
        path: The NIfTI file.
        label_values: The allowed label values for a label map, None for an image channel.

    Returns:
        The volume's geometry and its problems.

    Raises:
        _UnusableFileError: The file is missing, unreadable or not 3-D.
    """
    data, affine = _load_volume(path)
    problems = _finite_problems(data)
    if label_values is not None:
        problems += _label_value_problems(data, label_values)
    return _Geometry(shape=data.shape, affine=affine), problems


def _load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return a file's 3-D voxel data and affine, turning every read error into plain words."""
    if not path.exists():
        raise _UnusableFileError("file does not exist")
    if not path.is_file():
        raise _UnusableFileError("is not a regular file")
    try:
        image = nib.load(path)
        # "unchanged" keeps nibabel from caching a second copy of the voxels in the image.
        data = image.get_fdata(caching="unchanged")
    except _NIFTI_READ_ERRORS as error:
        # nibabel repeats the full path, which the problem line already shows.
        reason = _describe_read_error(error).replace(str(path), path.name)
        raise _UnusableFileError(f"is not a readable NIfTI file ({reason})") from error
    if not isinstance(image, nib.Nifti1Pair):
        raise _UnusableFileError(
            f"is not a NIfTI file (nibabel reads it as {type(image).__name__})"
        )
    return _as_3d(data), image.affine


def _as_3d(data: np.ndarray) -> np.ndarray:
    """Drop a trailing singleton 4th dimension; reject anything else that is not 3-D."""
    if data.ndim == 4 and data.shape[3] == 1:
        return data[..., 0]
    if data.ndim != 3:
        raise _UnusableFileError(
            f"has shape {data.shape}; expected a 3-D volume "
            "(a trailing 4th dimension of size 1 is accepted)"
        )
    return data


def _geometry_problems(geometry: _Geometry, reference: _Geometry, reference_name: str) -> list[str]:
    """Compare a volume's shape and affine with the reference volume's."""
    if geometry.shape != reference.shape:
        return [f"shape {geometry.shape} differs from {reference_name} shape {reference.shape}"]
    if not np.allclose(geometry.affine, reference.affine, atol=AFFINE_ATOL):
        difference = float(np.max(np.abs(geometry.affine - reference.affine)))
        return [
            f"affine differs from {reference_name} affine (largest difference {difference:.3g})"
        ]
    return []


def _finite_problems(data: np.ndarray) -> list[str]:
    """Report NaN and Inf voxels, which poison normalisation and losses."""
    nan_count = int(np.count_nonzero(np.isnan(data)))
    inf_count = int(np.count_nonzero(np.isinf(data)))
    if nan_count or inf_count:
        return [f"contains {nan_count} NaN and {inf_count} Inf values"]
    return []


def _label_value_problems(data: np.ndarray, label_values: frozenset[int]) -> list[str]:
    """Report label values that are not integers or not in the class map."""
    values = np.unique(data)
    values = values[np.isfinite(values)]
    is_integer = values == np.round(values)
    problems = []
    if not is_integer.all():
        problems.append(f"label values are not integers (e.g. {values[~is_integer][0]:g})")
    unknown = sorted({int(value) for value in values[is_integer].tolist()} - label_values)
    if unknown:
        class_map = "{" + ", ".join(str(value) for value in sorted(label_values)) + "}"
        problems.append(
            f"label values {_format_values(unknown)} are not in the class map {class_map}"
        )
    return problems


# --------------------------------------------------------------------------- helpers


def _fail(csv_path: Path | None, problems: Sequence[str]) -> NoReturn:
    """Raise one ManifestError: a summary line, then one line per problem (the first few)."""
    source = f"Manifest '{csv_path}'" if csv_path is not None else "Manifest"
    count = len(problems)
    lines = [f"{source} has {count} problem{'' if count == 1 else 's'}:"]
    lines += [f"  {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if count > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
    raise ManifestError("\n".join(lines))


def _format_values(values: Sequence[int]) -> str:
    """Format a list of values, shortened so one corrupt label cannot flood the message."""
    if len(values) <= MAX_LISTED_VALUES:
        return str(list(values))
    shown = ", ".join(str(value) for value in values[:MAX_LISTED_VALUES])
    return f"[{shown}, ...] ({len(values) - MAX_LISTED_VALUES} more)"


def _describe(error: BaseException) -> str:
    """Return an exception's first message line, for embedding in a problem line."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _describe_read_error(error: BaseException) -> str:
    """Describe a NIfTI read error in plain words; gzip and EOF errors mean a damaged file."""
    if isinstance(error, EOFError):
        return f"truncated: {_describe(error)}"
    if isinstance(error, gzip.BadGzipFile | zlib.error):
        return f"gzip: {_describe(error)}"
    return _describe(error)


def _absolute(path: Path) -> Path:
    """Make a path absolute and normalised without resolving symlinks."""
    return Path(os.path.abspath(path))


def _resolve(cell: str, csv_dir: Path) -> Path:
    """Resolve a manifest path cell: absolute as is, relative to the CSV's folder otherwise."""
    return _absolute(csv_dir / cell)


def _display(path: Path, base: Path | None) -> str:
    """Show a path relative to the CSV's folder where it lies inside it, absolute otherwise."""
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(path)


def _file_digest(path: Path) -> bytes:
    """SHA-256 of a file, streamed in chunks so volumes are never held whole."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.digest()


__all__ = [
    "ManifestError",
    "SubjectRecord",
    "load_manifest",
    "manifest_fingerprint",
    "read_manifest",
    "validate_manifest",
]
