"""Tests for datamodules.fingerprint: the digest tracks the data's bytes, not where it lies."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import pytest

from datamodules import fingerprint as fingerprint_module
from datamodules.fingerprint import FINGERPRINT_LENGTH, manifest_fingerprint
from datamodules.manifest import ManifestError, read_manifest
from tests.manifest_cohort import CHANNELS, image, set_cell, write_cohort, write_volume


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A valid two-subject manifest (relative paths) in its own cohort folder."""
    return write_cohort(tmp_path / "cohort")


def fingerprint(csv_path: Path) -> str:
    """The fingerprint of a manifest, read afresh."""
    return manifest_fingerprint(csv_path, read_manifest(csv_path, CHANNELS))


def test_fingerprint_is_lowercase_hex_of_documented_length(manifest: Path) -> None:
    assert FINGERPRINT_LENGTH == 16
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(manifest))


def test_fingerprint_is_the_same_for_the_same_data(manifest: Path) -> None:
    first = fingerprint(manifest)

    assert fingerprint(manifest) == first
    # Rewriting a file with the same voxels leaves its bytes, and so the fingerprint, unchanged.
    write_volume(manifest.parent / "s2" / "mra.nii.gz", image(3))
    assert fingerprint(manifest) == first


def test_fingerprint_changes_with_one_voxel_of_one_file(manifest: Path) -> None:
    before = fingerprint(manifest)
    changed = image(3)
    changed[4, 4, 3] += 1.0

    write_volume(manifest.parent / "s2" / "mra.nii.gz", changed)

    assert fingerprint(manifest) != before


def test_fingerprint_changes_with_the_csv(manifest: Path) -> None:
    records = read_manifest(manifest, CHANNELS)
    before = manifest_fingerprint(manifest, records)

    set_cell(1, "split", "test")(manifest.parent)

    assert manifest_fingerprint(manifest, records) != before


def test_fingerprint_does_not_depend_on_where_the_cohort_lies(manifest: Path) -> None:
    copy = shutil.copytree(manifest.parent, manifest.parent.parent / "elsewhere" / "copy")

    assert fingerprint(copy / manifest.name) == fingerprint(manifest)


def test_fingerprint_names_unreadable_file(manifest: Path) -> None:
    records = read_manifest(manifest, CHANNELS)
    (manifest.parent / "s2" / "t2.nii.gz").unlink()

    with pytest.raises(ManifestError, match=r"subject 's2', file 's2/t2.nii.gz'"):
        manifest_fingerprint(manifest, records)


def test_a_gzip_file_whose_crc_fails_is_named(manifest: Path) -> None:
    # nibabel stops reading before the trailer: a flipped CRC bit reads as good voxels.
    path = manifest.parent / "s2" / "label.nii.gz"
    data = bytearray(path.read_bytes())
    data[-6] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"subject 's2', file 's2/label.nii.gz': is a damaged"):
        manifest_fingerprint(manifest, read_manifest(manifest, CHANNELS))


def test_a_gzip_file_cut_before_its_trailer_is_named(manifest: Path) -> None:
    path = manifest.parent / "s1" / "t2.nii.gz"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ManifestError, match="ends before its trailer"):
        manifest_fingerprint(manifest, read_manifest(manifest, CHANNELS))


def test_multi_member_and_zero_padded_gzip_files_are_accepted(manifest: Path) -> None:
    path = manifest.parent / "s1" / "mra.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    half = len(raw) // 2
    path.write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]) + b"\0" * 16)
    assert len(manifest_fingerprint(manifest, read_manifest(manifest, CHANNELS))) == 16


def test_settled_files_are_read_once_until_they_change(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ablation fingerprints one cohort per variant: settled files are hashed once."""
    files = [manifest, *(path for path in manifest.parent.rglob("*.nii.gz"))]
    for path in files:
        os.utime(path, ns=(0, 10**9))  # settled long ago
    reads: list[Path] = []
    real_read = fingerprint_module._read_digest
    monkeypatch.setattr(
        fingerprint_module, "_read_digest", lambda path: reads.append(path) or real_read(path)
    )
    before = fingerprint(manifest)
    assert fingerprint(manifest) == before
    assert len(reads) == len(files)
    changed = manifest.parent / "s1" / "t2.nii.gz"
    write_volume(changed, image(99))
    assert fingerprint(manifest) != before  # just written: read although remembered
    os.utime(changed, ns=(0, 2 * 10**9))
    assert fingerprint(manifest) != before
    assert fingerprint(manifest) != before
    assert reads[len(files) :] == [changed, changed]  # then remembered again
