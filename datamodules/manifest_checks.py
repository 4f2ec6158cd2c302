"""Open every NIfTI file a manifest names and check that training can use it.

Bad data should fail in seconds with a message that says what to fix, not an hour into training
with a traceback from inside a loader. So :func:`validate_manifest` collects every problem over
all subjects and files and raises them as one :class:`ManifestError`, one line per file naming
the subject, the file and the problem in plain words.

Example:
    >>> from datamodules.manifest import read_manifest
    >>> from datamodules.phantom import write_phantom
    >>> csv_path = write_phantom(getfixture("tmp_path"), n_subjects=1, shape=(16, 16, 16))
    >>> records = read_manifest(csv_path, ["cisternography", "angiography"])
    >>> validate_manifest(records, range(5), csv_path=csv_path)  # labels 0-4: no problem
    >>> validate_manifest(records, range(4), csv_path=csv_path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    datamodules.manifest_records.ManifestError: ...phantom_000...: label values [4] are not in ...
"""

from __future__ import annotations

import errno
import functools
import gzip
import os
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from datamodules.labels import integral_mask
from datamodules.manifest_records import (
    LABEL_COLUMN,
    FileVersion,
    ManifestError,
    SubjectRecord,
    absolute_path,
    describe_error,
    file_problem,
    raise_manifest_error,
    record_files,
    settled_version,
)

# Voxel sizes are stored as float32 in NIfTI headers; 1e-3 mm absorbs round-off, not real shifts.
AFFINE_ATOL = 1e-3
MAX_LISTED_VALUES = 10

_NIFTI_READ_ERRORS = (
    ImageFileError,
    HeaderDataError,
    OSError,
    EOFError,
    zlib.error,
    ValueError,
)


class _UnusableFileError(Exception):
    """A file cannot be checked any further (missing, unreadable, not 3-D)."""


@dataclass(frozen=True, eq=False)
class _Geometry:
    """Spatial shape and affine of a volume, kept without its voxels to bound memory."""

    shape: tuple[int, ...]
    affine: np.ndarray


def validate_manifest(
    records: Sequence[SubjectRecord],
    label_values: Collection[int],
    *,
    csv_path: str | Path | None = None,
) -> None:
    """Open every file of every record and check that training can use it.

    Checks that each file exists and is a readable NIfTI volume, is 3-D (a trailing 4th dimension
    of size 1 is accepted), shares the label's shape and affine, holds only finite intensities,
    for image channels, is not one value everywhere, and, for labels, holds whole numbers (any
    dtype, see :mod:`datamodules.labels`) from
    ``label_values``. Without a label, channels are compared with the first channel instead.
    Files are read one at a time to bound memory.

    Args:
        records: Records from :func:`datamodules.manifest.read_manifest`.
        label_values: The class map's label values, background 0 included.
        csv_path: The manifest, named in the message; file paths are shown relative to its folder.

    Raises:
        ManifestError: One error listing every problem found, over all subjects and files.
    """
    allowed = frozenset(int(value) for value in label_values)
    base = absolute_path(Path(csv_path)).parent if csv_path is not None else None
    problems = [
        file_problem(record.subject, path, base, problem)
        for record in records
        for path, problem in _subject_problems(record, allowed)
    ]
    if problems:
        raise_manifest_error(Path(csv_path) if csv_path is not None else None, problems)


def _subject_problems(
    record: SubjectRecord, label_values: frozenset[int]
) -> list[tuple[Path, str]]:
    """Check every file of one subject against the first one (the label when there is one)."""
    files = record_files(record)
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


def _file_problems(path: Path, label_values: frozenset[int] | None) -> tuple[_Geometry, list[str]]:
    """``_read_file_problems``, once per settled version of the file (``settled_version``)."""
    version = settled_version(path)
    if version is None:  # unreadable (the read says why) or still changing
        return _read_file_problems(path, label_values)
    geometry, problems = _remembered_file_problems(path, version, label_values)
    return geometry, list(problems)


@functools.lru_cache(maxsize=4096)
def _remembered_file_problems(
    path: Path, version: FileVersion, label_values: frozenset[int] | None
) -> tuple[_Geometry, tuple[str, ...]]:
    """``_read_file_problems`` of a file at ``version``; errors are raised, not remembered."""
    geometry, problems = _read_file_problems(path, label_values)
    return geometry, tuple(problems)


def _read_file_problems(
    path: Path, label_values: frozenset[int] | None
) -> tuple[_Geometry, list[str]]:
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
    elif not problems:
        problems += _constant_problems(data)
    return _Geometry(shape=data.shape, affine=affine), problems


def _load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return a file's 3-D voxel data and affine, turning every read error into plain words."""
    if not path.exists():
        raise _UnusableFileError(_missing_file_problem(path))
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


def _constant_problems(data: np.ndarray) -> list[str]:
    """Report an image channel with one value everywhere: z-normalisation makes it NaN."""
    low, high = float(data.min()), float(data.max())
    if low == high:
        return [f"has the same value ({low:g}) in every voxel; an image channel needs contrast"]
    return []


def _label_value_problems(data: np.ndarray, label_values: frozenset[int]) -> list[str]:
    """Report label values that are not whole numbers or not in the class map.

    NaN and Inf are left to :func:`_finite_problems`, so each is reported once.
    """
    values = np.unique(data)
    values = values[np.isfinite(values)]
    is_integer = integral_mask(values)
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


def _format_values(values: Sequence[int]) -> str:
    """Format a list of values, shortened so one corrupt label cannot flood the message."""
    if len(values) <= MAX_LISTED_VALUES:
        return str(list(values))
    shown = ", ".join(str(value) for value in values[:MAX_LISTED_VALUES])
    return f"[{shown}, ...] ({len(values) - MAX_LISTED_VALUES} more)"


def _missing_file_problem(path: Path) -> str:
    """Why ``path`` does not exist: absent, a symbolic link loop, or a link to nothing."""
    if not path.is_symlink():
        return "file does not exist"
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop this way
        return "is a symbolic link loop"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"is a symbolic link to {os.readlink(path)}, which does not exist"
    return f"is a symbolic link to {target}, which cannot be opened"


def _describe_read_error(error: BaseException) -> str:
    """Describe a NIfTI read error in plain words; gzip and EOF errors mean a damaged file."""
    if isinstance(error, EOFError):
        return f"truncated: {describe_error(error)}"
    if isinstance(error, gzip.BadGzipFile | zlib.error):
        return f"gzip: {describe_error(error)}"
    return describe_error(error)


__all__ = ["AFFINE_ATOL", "ManifestError", "validate_manifest"]
