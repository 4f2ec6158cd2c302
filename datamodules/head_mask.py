"""The head in an MR volume: where translation quality is measured, and IXI's stand-in label.

The air around a head is dark in every contrast; its voxels say nothing about how well an
image was generated, and on a real scan they outnumber the head. A voxel belongs to the
head when it is brighter than the volume's mean (``datamodules.transforms.foreground``,
unchanged by z-normalisation, so the rule gives the same mask before and after it), in
the largest connected component, with the holes (dark CSF, flow voids, bone) filled.

>>> import numpy as np
>>> volume = np.zeros((9, 9, 3))
>>> volume[2:7, 2:7] = 1.0
>>> volume[4, 4] = 0.0                       # a dark hole inside the head
>>> volume[0, 0] = 5.0                       # a bright speck outside it
>>> head_mask(volume)[:, :, 1].sum()
np.int64(25)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def head_mask(volume: np.ndarray) -> np.ndarray:
    """Boolean mask of the head in a 3D volume (see the module docstring)."""
    volume = np.asarray(volume, dtype=np.float64)
    bright = volume > volume.mean()
    components, count = ndimage.label(bright)
    if count == 0:
        return bright
    sizes = np.bincount(components.ravel())[1:]
    largest = components == 1 + int(np.argmax(sizes))
    # Holes close in 3D and then slice by slice: a hole open at the volume's edge in 3D
    # (the neck, a cropped vertex) is still closed within the slices that surround it.
    filled = ndimage.binary_fill_holes(largest)
    for k in range(filled.shape[-1]):
        filled[..., k] = ndimage.binary_fill_holes(filled[..., k])
    return filled
