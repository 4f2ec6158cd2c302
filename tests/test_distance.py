"""Signed distance maps of ground-truth structures."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.distance import distance_maps_for, signed_distance_maps


def test_signed_distance_by_hand():
    labels = np.zeros((7, 7), dtype=int)
    labels[2:5, 2:5] = 1  # a 3x3 square
    maps = signed_distance_maps(labels, 3)
    assert maps.shape == (3, 7, 7)
    assert maps[1, 3, 3] == -1  # the centre, one voxel inside the boundary
    assert maps[1, 2, 2] == 0  # on the boundary
    assert maps[1, 2, 1] == 1  # one voxel outside
    assert maps[1, 0, 0] == pytest.approx(np.sqrt(8))  # diagonal to the corner (2, 2)
    assert maps[0, 3, 3] == pytest.approx(2.0)  # background: the centre is 2 voxels away
    assert np.all(maps[2] == pytest.approx(np.sqrt(98)))  # an absent class: the diagonal


def test_structure_filling_the_volume_is_inside_everywhere():
    maps = signed_distance_maps(np.ones((4, 5, 3), dtype=int), 2)
    assert (maps[1] <= 0).all()
    assert maps[1][0, 0, 0] == 0 and maps[1][1, 2, 1] == -1


def test_file_maps_use_the_task_indices(tmp_path):
    import nibabel as nib

    labels = np.zeros((6, 6, 4), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 4
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)
    maps = distance_maps_for(path, {0: 0, 4: 1}, 2)
    assert tuple(maps.shape) == (2, 6, 6, 4)
    assert float(maps[1, 1, 1, 1]) == 0.0
    assert maps is distance_maps_for(path, {0: 0, 4: 1}, 2)  # cached, not recomputed
