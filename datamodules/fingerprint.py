"""Fingerprint a manifest's data, to tag each run with exactly the data it saw.

The fingerprint digests bytes, not paths: the CSV file's bytes, then each referenced file's
bytes in record order. So it changes with any edit to the CSV or any voxel of any file, and a
cohort whose CSV uses relative paths keeps its fingerprint when the whole folder is copied or
moved elsewhere (absolute path cells are part of the CSV's bytes, so moving those changes it).

The same pass checks each gzip stream to its end (``GzipCheck``): a ``.nii.gz`` whose
CRC fails still reads as plausible voxels, because nibabel stops before the trailer.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from pathlib import Path

from datamodules.manifest_records import (
    FileVersion,
    SubjectRecord,
    absolute_path,
    describe_error,
    file_problem,
    raise_manifest_error,
    record_files,
    settled_version,
)

FINGERPRINT_LENGTH = 16
_CHUNK_BYTES = 1 << 20


def manifest_fingerprint(csv_path: str | Path, records: Sequence[SubjectRecord]) -> str:
    """Digest the manifest and every file it references, to tag a run with the data it saw.

    Args:
        csv_path: The manifest CSV.
        records: Its records; every label and channel file is hashed, in record order.

    Returns:
        The first :data:`FINGERPRINT_LENGTH` (16) lowercase hex characters of a SHA-256 over the
        CSV's and all referenced files' contents; the same wherever the cohort folder lies.

    Raises:
        ManifestError: The CSV or a referenced file cannot be read.
    """
    csv_path = Path(csv_path)
    digest = hashlib.sha256()
    try:
        digest.update(_file_digest(csv_path))
    except OSError as error:
        raise_manifest_error(
            csv_path, [f"cannot be read for the fingerprint ({describe_error(error)})"]
        )
    base = absolute_path(csv_path).parent
    for record in records:
        for _, path in record_files(record):
            try:
                digest.update(_file_digest(path))
            except OSError as error:
                problem = f"cannot be read for the fingerprint ({describe_error(error)})"
                raise_manifest_error(csv_path, [file_problem(record.subject, path, base, problem)])
            except (zlib.error, EOFError) as error:
                problem = f"is a damaged gzip file ({describe_error(error)}); copy it again"
                raise_manifest_error(csv_path, [file_problem(record.subject, path, base, problem)])
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _file_digest(path: Path) -> bytes:
    """SHA-256 of a file, read once per settled version of it (``settled_version``).

    Raises:
        OSError: the file cannot be read.
        zlib.error, EOFError: a gzip file whose stream or CRC is damaged.
    """
    version = settled_version(path)
    return _read_digest(path) if version is None else _remembered_digest(path, version)


@functools.lru_cache(maxsize=4096)
def _remembered_digest(path: Path, version: FileVersion) -> bytes:
    """``_read_digest`` of a file at ``version``; errors are raised, not remembered."""
    return _read_digest(path)


def _read_digest(path: Path) -> bytes:
    """SHA-256 of a file, streamed in chunks so volumes are never held whole."""
    digest = hashlib.sha256()
    check: GzipCheck | None = None
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            if check is None and chunk.startswith(GZIP_MAGIC):
                check = GzipCheck()
            digest.update(chunk)
            if check is not None:
                check.feed(chunk)
    if check is not None:
        check.finish()
    return digest.digest()


GZIP_MAGIC = b"\x1f\x8b"


class GzipCheck:
    """Inflate a gzip file chunk by chunk, discarding the output, to verify every CRC.

    zlib checks each member's CRC-32 and length when it reaches the member's trailer.
    """

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        self._open = False

    def feed(self, data: bytes) -> None:
        """Inflate the next bytes. Raises ``zlib.error`` on a damaged stream or CRC."""
        while data:
            self._open = True
            self._inflate.decompress(data, _CHUNK_BYTES)
            while self._inflate.unconsumed_tail:  # bounded output: never a whole volume
                self._inflate.decompress(self._inflate.unconsumed_tail, _CHUNK_BYTES)
            data = b""
            if self._inflate.eof:  # a member ended: what follows is the next one
                data, self._open = self._inflate.unused_data, False
                self._inflate = zlib.decompressobj(wbits=31)
                if not data.strip(b"\0"):  # zero padding after the last member, as gzip allows
                    data = b""

    def finish(self) -> None:
        """Raise ``EOFError`` where the last member has no trailer (a cut file)."""
        if self._open:
            raise EOFError("the gzip stream ends before its trailer")


__all__ = ["FINGERPRINT_LENGTH", "manifest_fingerprint"]
