"""Tests for datamodules.labels: label volumes are read as integers, whatever the file's dtype."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

from datamodules.labels import integer_labels, read_label, torchio_label_reader

SHAPE = (4, 5, 3)
# Not the identity, so a reader that loses the file's affine is caught.
AFFINE = np.array(
    [[0.9, 0.0, 0.0, -10.0], [0.0, 1.1, 0.0, 5.0], [0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 0.0, 1.0]]
)


def label_values(dtype: type) -> np.ndarray:
    """A label volume holding 0, 1 and 3, in the given dtype."""
    data = np.zeros(SHAPE, dtype=dtype)
    data[1:3, 1:4, 1] = 1
    data[2, 2:, 2] = 3
    return data


def write_label(path: Path, data: np.ndarray) -> Path:
    """Write a label volume as NIfTI and return its path."""
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path


def test_float_file_is_read_as_int32(tmp_path: Path) -> None:
    path = write_label(tmp_path / "float.nii.gz", label_values(np.float32))

    labels = read_label(path)

    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, label_values(np.int32))
    assert set(np.unique(labels).tolist()) == {0, 1, 3}


def test_integer_file_keeps_its_dtype(tmp_path: Path) -> None:
    path = write_label(tmp_path / "uint8.nii.gz", label_values(np.uint8))

    labels = read_label(path)

    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, label_values(np.uint8))


def test_trailing_singleton_axis_is_squeezed(tmp_path: Path) -> None:
    path = write_label(tmp_path / "4d.nii.gz", label_values(np.float32)[..., np.newaxis])

    labels = read_label(path)

    assert labels.shape == SHAPE
    assert labels.dtype == np.int32


def test_torchio_reader_gives_integers_and_torchio_affine(tmp_path: Path) -> None:
    path = write_label(tmp_path / "float.nii.gz", label_values(np.float32))

    converted = tio.LabelMap(path, reader=torchio_label_reader)
    plain = tio.LabelMap(path)

    assert converted.data.dtype == torch.int32
    assert not converted.data.is_floating_point()
    np.testing.assert_array_equal(converted.affine, plain.affine)
    assert torch.equal(converted.data, plain.data.to(torch.int32))


def test_fractional_float_label_raises(tmp_path: Path) -> None:
    data = label_values(np.float32)
    data[0, 0, 0] = 1.5
    path = write_label(tmp_path / "fraction.nii.gz", data)

    with pytest.raises(ValueError, match=r"whole numbers, found 1\.5"):
        read_label(path)
    with pytest.raises(ValueError, match=r"whole numbers, found 1\.5"):
        tio.LabelMap(path, reader=torchio_label_reader).load()


def test_nan_label_raises(tmp_path: Path) -> None:
    # Only through nibabel: SimpleITK, under TorchIO's read_image, reads NaN voxels as 0.
    data = label_values(np.float32)
    data[0, 0, 0] = np.nan
    path = write_label(tmp_path / "nan.nii.gz", data)

    with pytest.raises(ValueError, match="whole numbers, found nan"):
        read_label(path)


def test_integer_labels_on_arrays_and_tensors() -> None:
    integers = np.array([0, 2, 4], dtype=np.int16)
    tensor = torch.tensor([0, 2, 4], dtype=torch.int64)

    assert integer_labels(integers) is integers
    assert integer_labels(tensor) is tensor
    floats = integer_labels(torch.tensor([0.0, 2.0, 4.0]))
    assert floats.dtype == torch.int32
    assert floats.tolist() == [0, 2, 4]
    assert integer_labels(np.array([True, False])).dtype == np.int32
    with pytest.raises(ValueError, match="whole numbers"):
        integer_labels(torch.tensor([0.0, 2.5]))
    with pytest.raises(ValueError, match="does not fit int32"):
        integer_labels(np.array([0.0, 1e12]))
