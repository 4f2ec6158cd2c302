"""Tests for datamodules.phantom.tissues: the label map's classes, layout and hemispheres."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from datamodules.phantom.anatomy import CLASS_NAMES, TISSUE_LABEL, VESSEL_LABEL, Tissue
from datamodules.phantom.writer import generate_subject

BRAIN_LABELS = (1, 2, 3)


@pytest.fixture(scope="module")
def default_subject() -> dict[str, np.ndarray]:
    """Subject 0 of seed 0 at the default size (the fractions depend on the grid size)."""
    return generate_subject(np.random.default_rng([0, 0]))


def test_every_tissue_has_a_label_and_every_label_a_name() -> None:
    assert len(TISSUE_LABEL) == len(Tissue)
    assert set(CLASS_NAMES) == {*TISSUE_LABEL[TISSUE_LABEL > 0].tolist(), VESSEL_LABEL}


def test_class_fractions_at_default_size(default_subject: dict[str, np.ndarray]) -> None:
    label = default_subject["label"]
    assert label.shape == (96, 96, 64)
    fractions = {k: float((label == k).mean()) for k in range(5)}
    assert all(f > 0 for f in fractions.values()), fractions
    assert 0 < fractions[VESSEL_LABEL] < 0.01
    assert fractions[1] == max(fractions[k] for k in CLASS_NAMES)
    assert fractions[2] >= 0.003
    assert fractions[3] >= 0.003


def test_anatomy_follows_the_axis_convention(default_subject: dict[str, np.ndarray]) -> None:
    """x right, y anterior, z superior: cerebellum and brainstem below, cerebellum behind."""
    label = default_subject["label"]
    centre = {k: np.argwhere(label == k).mean(axis=0) for k in BRAIN_LABELS}
    assert centre[2][2] < centre[1][2]  # cerebellum inferior to cerebrum
    assert centre[3][2] < centre[1][2]  # brainstem inferior to cerebrum
    assert centre[2][1] < centre[3][1]  # cerebellum posterior to brainstem


def test_cerebrum_is_split_into_hemispheres(default_subject: dict[str, np.ndarray]) -> None:
    """An upper axial slice of the cerebrum falls apart into two halves of similar size."""
    label = default_subject["label"]
    upper = int(np.percentile(np.argwhere(label == 1)[:, 2], 85))
    components, count = ndimage.label(label[:, :, upper] == 1)
    sizes = sorted(np.bincount(components.ravel())[1:], reverse=True)
    assert count >= 2
    assert sizes[1] > 0.5 * sizes[0]


def test_cerebrum_has_ventricles_inside(default_subject: dict[str, np.ndarray]) -> None:
    """Background voxels enclosed by cerebrum in an axial slice exist (ventricles, fissures)."""
    label = default_subject["label"]
    cerebrum = label == 1
    holes = ndimage.binary_fill_holes(cerebrum) & ~cerebrum & (label == 0)
    assert holes.sum() > 50
