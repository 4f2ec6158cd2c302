"""The manifest's record type, its column names and the one error every manifest problem raises.

Reading (:mod:`datamodules.manifest`), checking (:mod:`datamodules.manifest_checks`) and
fingerprinting (:mod:`datamodules.fingerprint`) all build on these, so they live apart from any
of the three: each imports this module and none imports another's internals, which keeps the
modules free of import cycles.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

SUBJECT_COLUMN = "subject"
LABEL_COLUMN = "label"
SPLIT_COLUMN = "split"
SPLITS = ("train", "val", "test")

MAX_LISTED_PROBLEMS = 20


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


def record_files(record: SubjectRecord) -> list[tuple[str, Path]]:
    """List a record's files as (role, path), the label first so checks can use it as reference.

    Args:
        record: One manifest record.

    Returns:
        ``("label", path)`` when the record has a label, then ``(channel, path)`` per channel.
    """
    label = [(LABEL_COLUMN, record.label)] if record.label is not None else []
    return label + list(record.channels.items())


def raise_manifest_error(csv_path: Path | None, problems: Sequence[str]) -> NoReturn:
    """Raise one ManifestError: the problem, or a summary with the first, then the first few.

    Args:
        csv_path: The manifest, named in the summary line; None where it is not known.
        problems: Every problem found, one plain-words line each.

    Raises:
        ManifestError: Always.
    """
    source = f"Manifest '{csv_path}'" if csv_path is not None else "Manifest"
    count = len(problems)
    # The first line says what is wrong on its own: it is what a terminal or log shows.
    if count == 1:
        raise ManifestError(f"{source}: {problems[0]}")
    lines = [f"{source} has {count} problems, the first: {problems[0]}"]
    lines += [f"  {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if count > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
    raise ManifestError("\n".join(lines))


def file_problem(subject: str, path: Path, base: Path | None, problem: str) -> str:
    """Phrase a problem with one file as ``subject '<id>', file '<path>': <problem>``."""
    return f"subject '{subject}', file '{display_path(path, base)}': {problem}"


def describe_error(error: BaseException) -> str:
    """Return an exception's first message line, for embedding in a problem line."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


FileVersion = tuple[str, int, int]
# A file modified more recently than this may change again within its timestamp's
# granularity (milliseconds on common file systems) unseen: it is never remembered.
SETTLED_SECONDS = 2.0


def settled_version(path: Path) -> FileVersion | None:
    """A file's absolute path, size and modification time (ns), if it has settled.

    The checks and the fingerprint remember each file by it, so that the variants of an
    ablation, which load the same cohort one after another in a worker, read each file
    once, while a file written anew (another size or time) is read again. None, for a
    file that cannot be read or was modified in the last ``SETTLED_SECONDS``: read it,
    and remember nothing (as git re-reads files as new as its index).
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    if time.time_ns() - stat.st_mtime_ns < SETTLED_SECONDS * 1e9:
        return None
    return str(absolute_path(path)), stat.st_size, stat.st_mtime_ns


def absolute_path(path: Path) -> Path:
    """Make a path absolute and normalised without resolving symlinks."""
    return Path(os.path.abspath(path))


def display_path(path: Path, base: Path | None) -> str:
    """Show a path relative to the CSV's folder where it lies inside it, absolute otherwise."""
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(path)


__all__ = [
    "LABEL_COLUMN",
    "MAX_LISTED_PROBLEMS",
    "SPLITS",
    "SPLIT_COLUMN",
    "SUBJECT_COLUMN",
    "ManifestError",
    "SubjectRecord",
    "absolute_path",
    "describe_error",
    "display_path",
    "file_problem",
    "raise_manifest_error",
    "record_files",
]
