"""Tests for datamodules.ixi and ``versaseg ixi`` on a tiny fake IXI folder written here.

The fake T2 and MRA hold the same bright block in world coordinates on different grids (the
MRA coarser, shifted and flipped in x), so resampling can be checked against the affines.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torchio as tio
from scipy import ndimage

from datamodules.dataset import load_description
from datamodules.ixi import IXICohort, fetch_ixi, parse_ixi_name, write_ixi_cohort
from datamodules.manifest import read_manifest
from datamodules.manifest_records import ManifestError
from experiments.cli import main

T2_SHAPE = (12, 12, 8)
T2_AFFINE = np.diag([1.5, 1.5, 1.5, 1.0])
MRA_SHAPE = (10, 10, 6)
# 2 mm voxels, x flipped (i = 0 at x = 20 mm), origin shifted: another grid, another orientation.
MRA_AFFINE = np.array(
    [[-2.0, 0.0, 0.0, 20.0], [0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.0, 1.0]]
)
BOX_LOW, BOX_HIGH = np.array([5.0, 4.0, 3.0]), np.array([11.0, 12.0, 8.0])  # world mm
BRIGHT = 100

PAIRED = "IXI002-Guys-0828"
T2_ONLY = "IXI012-HH-1211"
OTHER = "IXI013-IOP-0001"


def world_block(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """BRIGHT where a voxel's centre lies in the world box, 0 elsewhere."""
    index = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), axis=-1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    inside = np.all((world >= BOX_LOW) & (world <= BOX_HIGH), axis=-1)
    return np.where(inside, BRIGHT, 0).astype(np.int16)


def write_ixi_file(folder: Path, subject: str, modality: str) -> Path:
    """One fake IXI volume (int16, like IXI's) named as IXI names it."""
    shape, affine = (T2_SHAPE, T2_AFFINE) if modality != "MRA" else (MRA_SHAPE, MRA_AFFINE)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{subject}-{modality}.nii.gz"
    nib.save(nib.Nifti1Image(world_block(shape, affine), affine), path)
    return path


def fake_ixi(root: Path) -> Path:
    """Two subjects with T2, MRA and PD; one with T2 only; all files in one folder."""
    for subject in (PAIRED, OTHER):
        for modality in ("T2", "MRA", "PD"):
            write_ixi_file(root, subject, modality)
    write_ixi_file(root, T2_ONLY, "T2")
    return root


def load(out: Path, subject: str, name: str) -> nib.Nifti1Image:
    return nib.load(out / subject / f"{name}.nii.gz")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[IXICohort, Path]:
    """The fake folder written as a cohort with the default channels; (cohort, out)."""
    source = fake_ixi(tmp_path_factory.mktemp("ixi"))
    out = tmp_path_factory.mktemp("cohort")
    return write_ixi_cohort(source, out), out


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IXI002-Guys-0828-T2.nii.gz", ("IXI002-Guys-0828", "T2")),
        ("IXI012-HH-1211-MRA.nii.gz", ("IXI012-HH-1211", "MRA")),
        ("IXI100-IOP-0879-PD.nii.gz", ("IXI100-IOP-0879", "PD")),
        ("IXI002-Guys-0828-DTI-00.nii.gz", ("IXI002-Guys-0828", "DTI-00")),
        ("IXI002-Guys-0828-T2.nii", None),
        ("IXI002-Guys-T2.nii.gz", None),
        ("T2.nii.gz", None),
        ("label.nii.gz", None),
    ],
)
def test_parse_ixi_name(name: str, expected: tuple[str, str] | None) -> None:
    assert parse_ixi_name(name) == expected


# ----------------------------------------------------------------------------- pairing


def test_a_subject_without_mra_is_reported_unpaired_and_not_written(
    written: tuple[IXICohort, Path],
) -> None:
    cohort, out = written
    assert cohort.subjects == (PAIRED, OTHER)
    assert cohort.unpaired == {T2_ONLY: ["MRA"]}
    assert cohort.unreadable == {}
    assert cohort.skipped == [f"{T2_ONLY}: unpaired, no MRA"]
    assert not (out / T2_ONLY).exists()
    assert sorted(p.name for p in (out / PAIRED).iterdir()) == [
        "MRA.nii.gz",
        "T2.nii.gz",
        "label.nii.gz",
    ]


# ----------------------------------------------------------------------------- resampling


def test_mra_is_resampled_onto_the_t2_grid_by_the_affines(
    written: tuple[IXICohort, Path],
) -> None:
    _, out = written
    image = load(out, PAIRED, "MRA")
    mra = np.asarray(image.dataobj)
    assert mra.shape == T2_SHAPE and mra.dtype == np.float32
    np.testing.assert_allclose(image.affine, T2_AFFINE)
    np.testing.assert_allclose(image.header.get_qform(), T2_AFFINE)
    np.testing.assert_allclose(image.header.get_sform(), T2_AFFINE)

    # A voxel deep in the world box is bright; one outside it, inside the MRA's view, is dark.
    assert mra[5, 5, 4] == pytest.approx(BRIGHT)  # world (7.5, 7.5, 6.0) mm
    assert mra[10, 10, 2] == pytest.approx(0.0)  # world (15, 15, 3) mm

    # Every T2 voxel inside the MRA's grid: trilinear interpolation at the MRA index its
    # world point maps to, computed here from the two affines.
    index = np.stack(np.meshgrid(*map(np.arange, T2_SHAPE), indexing="ij"), axis=-1)
    world = index @ T2_AFFINE[:3, :3].T + T2_AFFINE[:3, 3]
    to_mra = np.linalg.inv(MRA_AFFINE)
    continuous = world @ to_mra[:3, :3].T + to_mra[:3, 3]
    inside = np.all((continuous >= 0) & (continuous <= np.array(MRA_SHAPE) - 1), axis=-1)
    source = world_block(MRA_SHAPE, MRA_AFFINE).astype(np.float64)
    expected = ndimage.map_coordinates(source, continuous[inside].T, order=1)
    assert inside.sum() > 200
    np.testing.assert_allclose(mra[inside], expected, atol=1e-3)


def test_reference_is_written_unchanged_and_the_label_is_its_head(
    written: tuple[IXICohort, Path],
) -> None:
    _, out = written
    t2 = load(out, PAIRED, "T2")
    assert t2.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(t2.dataobj), world_block(T2_SHAPE, T2_AFFINE))
    label = load(out, PAIRED, "label")
    assert label.get_data_dtype() == np.uint8
    np.testing.assert_allclose(label.affine, T2_AFFINE)
    block = world_block(T2_SHAPE, T2_AFFINE) > 0
    np.testing.assert_array_equal(np.asarray(label.dataobj), block.astype(np.uint8))


# ----------------------------------------------------------------------------- damaged files


def truncate(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def flip_a_byte(raw: bytes) -> bytes:
    """Flip a byte of the deflate stream: nibabel may decode it; the gzip CRC does not match."""
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize("damage", [truncate, flip_a_byte])
def test_a_damaged_file_makes_its_subject_unreadable_naming_the_file(tmp_path, damage) -> None:
    source = fake_ixi(tmp_path / "ixi")
    path = source / f"{OTHER}-MRA.nii.gz"
    path.write_bytes(damage(path.read_bytes()))
    cohort = write_ixi_cohort(source, tmp_path / "out")
    assert cohort.subjects == (PAIRED,)
    assert list(cohort.unreadable) == [OTHER]
    assert cohort.unreadable[OTHER].startswith(f"{path.name}: ")
    assert not (tmp_path / "out" / OTHER).exists()


def test_a_modality_found_twice_makes_its_subject_unreadable(tmp_path) -> None:
    source = fake_ixi(tmp_path / "ixi")
    write_ixi_file(source / "T2", OTHER, "T2")
    cohort = write_ixi_cohort(source, tmp_path / "out")
    assert cohort.subjects == (PAIRED,)
    assert "T2 found more than once" in cohort.unreadable[OTHER]


# ----------------------------------------------------------------------------- manifest


def test_manifest_and_description_load_with_the_translation_pair(
    written: tuple[IXICohort, Path],
) -> None:
    cohort, out = written
    assert cohort.manifest == out / "manifest.csv"
    description = load_description(cohort.manifest)
    assert description.channels == ("T2", "MRA")
    assert dict(description.class_map) == {1: "head"}
    assert description.name == "ixi"
    assert description.translation is not None
    assert (description.translation.source, description.translation.target) == (("T2",), "MRA")

    table = pd.read_csv(cohort.manifest)
    assert list(table.columns) == ["subject", "T2", "MRA", "label"]
    assert table["MRA"].tolist() == [f"{PAIRED}/MRA.nii.gz", f"{OTHER}/MRA.nii.gz"]
    records = read_manifest(cohort.manifest, description.channels)
    assert [record.subject for record in records] == [PAIRED, OTHER]
    assert all(path.is_file() for record in records for path in record.channels.values())
    assert all(record.label is not None and record.label.is_file() for record in records)


def test_the_target_is_the_first_channel_that_is_not_the_reference(tmp_path) -> None:
    channels = ("PD", "T2", "MRA")
    cohort = write_ixi_cohort(fake_ixi(tmp_path / "ixi"), tmp_path / "out", channels=channels)
    description = load_description(cohort.manifest)
    assert description.channels == channels
    assert description.translation is not None
    assert (description.translation.source, description.translation.target) == (("T2",), "PD")


@pytest.mark.parametrize(
    ("channels", "reference", "problem"),
    [
        (("T2", "MRA"), "T1", "is not one of the channels"),
        (("T2",), "T2", "need one besides the reference"),
        (("T2", "T2", "MRA"), "T2", "must not repeat a name"),
    ],
)
def test_channels_without_a_translation_pair_are_refused(
    tmp_path, channels, reference, problem
) -> None:
    with pytest.raises(ValueError, match=problem):
        write_ixi_cohort(tmp_path, tmp_path / "out", channels=channels, reference=reference)


# ----------------------------------------------------------------------------- layout, progress


def test_files_in_per_modality_folders_are_found(tmp_path) -> None:
    """torchio.datasets.IXI's layout: root/T2/IXI...-T2.nii.gz, root/MRA/IXI...-MRA.nii.gz."""
    source = tmp_path / "ixi"
    for modality in ("T2", "MRA"):
        write_ixi_file(source / modality, PAIRED, modality)
    cohort = write_ixi_cohort(source, tmp_path / "out")
    assert cohort.subjects == (PAIRED,)
    assert np.asarray(load(tmp_path / "out", PAIRED, "MRA").dataobj).shape == T2_SHAPE


def test_progress_counts_the_subjects_with_every_channel(tmp_path) -> None:
    calls = []
    write_ixi_cohort(
        fake_ixi(tmp_path / "ixi"), tmp_path / "out", progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 2), (2, 2)]


# ----------------------------------------------------------------------------- errors


def test_a_missing_folder_is_a_manifest_error(tmp_path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        write_ixi_cohort(tmp_path / "absent", tmp_path / "out")


def test_a_folder_without_ixi_files_is_a_manifest_error(tmp_path) -> None:
    (tmp_path / "T2.nii.gz").write_bytes(b"")
    with pytest.raises(ManifestError, match="holds no IXI files"):
        write_ixi_cohort(tmp_path, tmp_path / "out")


def test_no_complete_readable_subject_is_a_manifest_error_listing_them(tmp_path) -> None:
    source = tmp_path / "ixi"
    write_ixi_file(source, T2_ONLY, "T2")
    write_ixi_file(source, OTHER, "T2")
    damaged = write_ixi_file(source, OTHER, "MRA")
    damaged.write_bytes(truncate(damaged.read_bytes()))
    with pytest.raises(ManifestError) as caught:
        write_ixi_cohort(source, tmp_path / "out")
    message = str(caught.value)
    assert f"{T2_ONLY}: unpaired, no MRA" in message
    assert f"{OTHER}: unreadable, {damaged.name}" in message
    assert not (tmp_path / "out" / "manifest.csv").exists()


# ----------------------------------------------------------------------------- download


def test_fetch_ixi_calls_torchio_with_download(monkeypatch, tmp_path) -> None:
    calls = []
    inspect.signature(tio.datasets.IXI).bind(tmp_path, modalities=("T2", "MRA"), download=True)
    monkeypatch.setattr(tio.datasets, "IXI", lambda *a, **k: calls.append((a, k)) or "dataset")
    assert fetch_ixi(tmp_path, ["T2", "MRA"]) == "dataset"
    assert calls == [((tmp_path,), {"modalities": ("T2", "MRA"), "download": True})]


def test_a_failed_download_is_a_manifest_error(monkeypatch, tmp_path) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tio.datasets, "IXI", offline)
    with pytest.raises(ManifestError, match="network unreachable"):
        fetch_ixi(tmp_path)


# ----------------------------------------------------------------------------- command line


def test_cli_writes_the_cohort_and_lists_the_unpaired_subject(tmp_path, capsys) -> None:
    source, out = fake_ixi(tmp_path / "ixi"), tmp_path / "out"
    assert main(["ixi", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{T2_ONLY}: unpaired, no MRA" in printed
    assert str(out / "manifest.csv") in printed
    assert (out / "manifest.csv").is_file()


def test_cli_download_fetches_into_source_first(monkeypatch, tmp_path, capsys) -> None:
    source, out = tmp_path / "ixi", tmp_path / "out"
    calls = []
    monkeypatch.setattr(
        "datamodules.ixi.fetch_ixi", lambda root, modalities: calls.append(fake_ixi(root))
    )
    assert main(["ixi", str(source), "--out", str(out), "--download"]) == 0
    assert calls == [source]
    assert (out / "manifest.csv").is_file()


def test_cli_folder_without_ixi_files_exits_2_with_one_error(tmp_path, capsys) -> None:
    assert main(["ixi", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("versaseg: error: IXI folder")
    assert error.count("versaseg: error:") == 1


def test_cli_refuses_a_reference_outside_the_channels(tmp_path, capsys) -> None:
    assert main(["ixi", str(tmp_path), "--out", str(tmp_path / "out"), "--reference", "T1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("versaseg: error: ixi: ") and "reference 'T1'" in error
