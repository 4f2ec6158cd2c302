"""Label volumes as integers: one rule for label values and types, applied when the data is read.

The rule: a label map holds whole-number class values. Files often store them in a float dtype
(``float32`` after a conversion or resampling tool); such a file is accepted when every value is
finite and exactly a whole number, and is read as ``int32``. Integer files keep their dtype.
A fraction, NaN or Inf is an error: :func:`datamodules.manifest_checks.validate_manifest`
reports it, by the same :func:`integral_mask`, before training starts, and
:func:`integer_labels` raises ``ValueError`` should such data reach it anyway.

So class indexing, samplers and losses only ever see integer labels, whatever dtype the file
had, and no caller needs its own cast.

Example:
    >>> import torchio as tio
    >>> path = getfixture("tmp_path") / "label.nii.gz"
    >>> stored = np.array([[[0.0, 1.0], [2.0, 4.0]]], dtype=np.float32)  # whole numbers as float
    >>> nib.save(nib.Nifti1Image(stored, np.eye(4)), path)
    >>> labels = read_label(path)
    >>> labels.dtype, labels.tolist()
    (dtype('int32'), [[[0, 1], [2, 4]]])
    >>> tio.LabelMap(path, reader=torchio_label_reader).data.dtype
    torch.int32
    >>> integer_labels(np.array([0.0, 1.5]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: label values must be whole numbers, found 1.5; ...
"""

from __future__ import annotations

from pathlib import Path
from typing import overload

import nibabel as nib
import numpy as np
import torch
from torchio.data.io import read_image

from datamodules.nifti import save_nifti

_INT32_MAX = np.iinfo(np.int32).max


@overload
def integral_mask(data: np.ndarray) -> np.ndarray: ...


@overload
def integral_mask(data: torch.Tensor) -> torch.Tensor: ...


def integral_mask(data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Mark the values that the rule accepts as labels: finite whole numbers.

    Args:
        data: Label values of a floating-point dtype.

    Returns:
        A boolean array or tensor of ``data``'s shape, True where a value is a finite integer.
    """
    if isinstance(data, torch.Tensor):
        return torch.isfinite(data) & (data == torch.round(data))
    return np.isfinite(data) & (data == np.round(data))


@overload
def integer_labels(data: np.ndarray) -> np.ndarray: ...


@overload
def integer_labels(data: torch.Tensor) -> torch.Tensor: ...


def integer_labels(data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Return label values as an integer type, so no float label reaches indexing or a loss.

    Args:
        data: A label volume as a numpy array or torch tensor.

    Returns:
        ``data`` itself when its dtype is already an integer type; otherwise the same values as
        ``int32`` (``torch.int32`` for a tensor): floats are whole numbers by the rule, so the
        conversion is exact, and booleans become 0 and 1.

    Raises:
        ValueError: A float value is not a finite whole number or does not fit ``int32``.
        TypeError: The dtype is neither integer, boolean nor floating point.
    """
    if isinstance(data, torch.Tensor):
        if data.dtype == torch.bool:
            return data.to(torch.int32)
        if not data.is_floating_point():
            if data.is_complex():
                raise TypeError(f"label data must be integer or float, got {data.dtype}")
            return data
        _check_integral(data, integral_mask(data), data.abs() > _INT32_MAX)
        return torch.round(data).to(torch.int32)
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        return data
    if data.dtype == np.bool_:
        return data.astype(np.int32)
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"label data must be integer or float, got {data.dtype}")
    _check_integral(data, integral_mask(data), np.abs(data) > _INT32_MAX)
    return np.round(data).astype(np.int32)


def read_label(path: str | Path) -> np.ndarray:
    """Read the label volume of a NIfTI file as integers, shape ``(x, y, z)``.

    Args:
        path: A NIfTI label map; a 4-D file whose last axis has size 1 is squeezed to 3-D.

    Returns:
        The voxel values (scaling applied) through :func:`integer_labels`.

    Raises:
        ValueError: The volume is not 3-D, or a value breaks the label rule.
    """
    labels = np.asarray(nib.load(path).dataobj)
    if labels.ndim == 4 and labels.shape[3] == 1:
        labels = labels.reshape(labels.shape[:3])
    if labels.ndim != 3:
        raise ValueError(f"label map '{path}' has shape {labels.shape}; expected a 3-D volume")
    return integer_labels(labels)


def torchio_label_reader(path: str | Path) -> tuple[torch.Tensor, np.ndarray]:
    """Read a label map for ``tio.LabelMap(path, reader=torchio_label_reader)`` as integers.

    Reads with TorchIO's own ``read_image``, so tensor layout and affine are exactly those of a
    plain ``tio.LabelMap(path)``; only the dtype follows :func:`integer_labels`. TorchIO loads
    an image with a custom reader in full even to answer a shape query.

    Args:
        path: The label map file.

    Returns:
        The ``(1, x, y, z)`` integer tensor and the 4x4 affine.

    Raises:
        ValueError: A value breaks the label rule.
    """
    tensor, affine = read_image(path)
    return integer_labels(tensor), affine


def _check_integral(
    data: np.ndarray | torch.Tensor,
    integral: np.ndarray | torch.Tensor,
    too_large: np.ndarray | torch.Tensor,
) -> None:
    """Raise a ValueError naming one offending value when float labels break the rule."""
    if not bool(integral.all()):
        example = float(data[~integral].reshape(-1)[0])
        raise ValueError(
            f"label values must be whole numbers, found {example:g}; "
            "validate_manifest reports such files before training"
        )
    if bool(too_large.any()):
        example = float(data[too_large].reshape(-1)[0])
        raise ValueError(f"label value {example:g} does not fit int32")


__all__ = ["integer_labels", "integral_mask", "read_label", "torchio_label_reader"]


def save_label(path: str | Path, values: np.ndarray, affine: np.ndarray) -> Path:
    """Write a label map of file label values as NIfTI, aligned to ``affine``.

    The affine is set as qform and sform (code 1, scanner) and units are mm, so the file
    overlays its image in ITK-SNAP or 3D Slicer; uint8 when the values fit, else uint16.
    """
    values = np.asarray(values)
    dtype = np.uint8 if values.max(initial=0) < 256 else np.uint16
    return save_nifti(path, values.astype(dtype), affine)
