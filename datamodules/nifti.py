"""Writing NIfTI files that open aligned in ITK-SNAP and 3D Slicer.

Every file the project writes (label maps, generated images) carries its image's affine
as both qform and sform (code 1, scanner coordinates) and millimetre units: viewers that
read either header field place it on its image.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def save_nifti(path: str | Path, values: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``values`` (dtype kept) as NIfTI aligned to ``affine``; returns the path."""
    affine = np.asarray(affine, dtype=np.float64)
    image = nib.Nifti1Image(np.asarray(values), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path
