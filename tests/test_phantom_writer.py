"""Tests for datamodules.phantom.writer: determinism, arrays, the files on disk and errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from datamodules.dataset import DESCRIPTION_NAME, load_description
from datamodules.phantom.anatomy import CLASS_NAMES
from datamodules.phantom.contrast import CHANNELS
from datamodules.phantom.geometry import phantom_affine
from datamodules.phantom.writer import DESCRIPTION, generate_subject, write_phantom

SMALL = (48, 48, 32)
SPACING = (4.0, 4.0, 4.0)
FILES = (*CHANNELS, "label")
COLUMNS = ["subject", *FILES]


def cohort_files(root: Path) -> list[Path]:
    """All files under a cohort folder, relative and sorted."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def load(root: Path, subject: str, name: str) -> np.ndarray:
    return np.asarray(nib.load(root / subject / f"{name}.nii.gz").dataobj)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small subjects, seed 0."""
    root = tmp_path_factory.mktemp("cohort")
    write_phantom(root, 2, seed=0, shape=SMALL, spacing=SPACING)
    return root


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(cohort: Path, tmp_path: Path) -> None:
    write_phantom(tmp_path, 2, seed=0, shape=SMALL, spacing=SPACING)
    files = cohort_files(cohort)
    assert files == cohort_files(tmp_path)
    assert len(files) == 2 * len(FILES) + 2  # plus manifest.csv and dataset.yaml
    for relative in files:
        assert (cohort / relative).read_bytes() == (tmp_path / relative).read_bytes(), relative


def test_gzip_header_has_no_timestamp(cohort: Path) -> None:
    raw = (cohort / "phantom_000" / "label.nii.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert int.from_bytes(raw[4:8], "little") == 0  # mtime
    assert gzip.decompress(raw)[344:348] == b"n+1\x00"  # single-file NIfTI-1 magic


def test_different_seed_gives_different_subjects(cohort: Path, tmp_path: Path) -> None:
    write_phantom(tmp_path, 1, seed=1, shape=SMALL, spacing=SPACING)
    for name in FILES:
        assert not np.array_equal(
            load(cohort, "phantom_000", name), load(tmp_path, "phantom_000", name)
        ), name


def test_subjects_in_a_cohort_differ(cohort: Path) -> None:
    for name in FILES:
        assert not np.array_equal(
            load(cohort, "phantom_000", name), load(cohort, "phantom_001", name)
        )


def test_subject_does_not_depend_on_cohort_size(cohort: Path, tmp_path: Path) -> None:
    write_phantom(tmp_path, 3, seed=0, shape=SMALL, spacing=SPACING)
    assert (tmp_path / "phantom_002" / "label.nii.gz").is_file()
    for subject in ("phantom_000", "phantom_001"):
        for name in FILES:
            relative = Path(subject) / f"{name}.nii.gz"
            assert (cohort / relative).read_bytes() == (tmp_path / relative).read_bytes()


def test_generate_subject_is_a_function_of_the_generator_state() -> None:
    first = generate_subject(np.random.default_rng(7), SMALL)
    second = generate_subject(np.random.default_rng(7), SMALL)
    for name in FILES:
        np.testing.assert_array_equal(first[name], second[name])


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("shape", [SMALL, (40, 32, 24)])
def test_generate_subject_shapes_dtypes_and_labels(shape: tuple[int, int, int]) -> None:
    subject = generate_subject(np.random.default_rng(3), shape)
    assert set(subject) == set(FILES)
    for name in CHANNELS:
        assert subject[name].shape == shape
        assert subject[name].dtype == np.float32
        assert np.isfinite(subject[name]).all()
        assert subject[name].min() >= 0  # magnitude images
    assert subject["label"].shape == shape
    assert subject["label"].dtype == np.uint8
    assert set(np.unique(subject["label"])) == {0, *CLASS_NAMES}


# ----------------------------------------------------------------------------- files


def test_manifest_columns_and_relative_paths(cohort: Path) -> None:
    table = pd.read_csv(cohort / "manifest.csv")
    assert list(table.columns) == COLUMNS
    assert list(table["subject"]) == ["phantom_000", "phantom_001"]
    for _, row in table.iterrows():
        for name in FILES:
            assert row[name] == f"{row['subject']}/{name}.nii.gz"
            assert not Path(row[name]).is_absolute()
            assert (cohort / row[name]).is_file()


def test_dataset_description_is_written_beside_the_manifest(cohort: Path) -> None:
    """dataset.yaml names the phantom's channels, classes and thin structure, read back as is."""
    assert (cohort / DESCRIPTION_NAME).is_file()
    description = load_description(cohort / "manifest.csv")
    assert description.channels == CHANNELS
    assert description.class_map == CLASS_NAMES
    assert description.thin_structures == ("vessels",)
    assert description.name == "versaseg-phantom"
    assert description == DESCRIPTION


def test_write_phantom_returns_manifest_path(tmp_path: Path) -> None:
    manifest = write_phantom(tmp_path / "new" / "dir", 1, shape=(16, 16, 16))
    assert manifest == tmp_path / "new" / "dir" / "manifest.csv"
    assert manifest.is_file()
    assert load_description(manifest) == DESCRIPTION


@pytest.mark.parametrize("spacing", [SPACING, (1.0, 1.5, 3.0)])
def test_nifti_geometry_and_header(tmp_path: Path, spacing: tuple[float, float, float]) -> None:
    shape = (24, 20, 16)
    write_phantom(tmp_path, 1, shape=shape, spacing=spacing)
    expected_affine = phantom_affine(shape, spacing)
    for name in FILES:
        image = nib.load(tmp_path / "phantom_000" / f"{name}.nii.gz")
        np.testing.assert_allclose(image.affine, expected_affine)
        header = image.header
        assert header.get_zooms() == pytest.approx(spacing)
        assert int(header["qform_code"]) == 1
        assert int(header["sform_code"]) == 1
        assert header.get_xyzt_units()[0] == "mm"
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert image.shape == shape
        assert image.get_data_dtype() == (np.uint8 if name == "label" else np.float32)


def test_progress_is_called_after_each_subject(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_phantom(tmp_path, 2, shape=(16, 16, 16), progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_subjects": -3}, "n_subjects"),
        ({"spacing": (0.0, 2.0, 2.0)}, "spacing"),
        ({"spacing": (2.0, -1.0, 2.0)}, "spacing"),
        ({"spacing": (2.0, 2.0, float("nan"))}, "spacing"),
        ({"shape": (15, 48, 32)}, "shape"),
        ({"shape": (48, 48, 8)}, "shape"),
        ({"shape": (48, 48)}, "shape"),
    ],
)
def test_write_phantom_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    arguments = {"n_subjects": 1, "shape": SMALL, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_phantom(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_generate_subject_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        generate_subject(np.random.default_rng(0), (8, 48, 32))
