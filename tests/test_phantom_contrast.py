"""Tests for datamodules.phantom.contrast: the intensities of the two contrasts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from datamodules.phantom.anatomy import VESSEL_LABEL, Tissue
from datamodules.phantom.contrast import CHANNELS, CONTRASTS, ContrastModel
from datamodules.phantom.writer import generate_subject

BRAIN_LABELS = (1, 2, 3)


@pytest.fixture(scope="module")
def default_subject() -> dict[str, np.ndarray]:
    """Subject 0 of seed 0 at the default size."""
    return generate_subject(np.random.default_rng([0, 0]))


def test_one_contrast_per_channel() -> None:
    assert tuple(CONTRASTS) == CHANNELS


def test_contrast_model_needs_every_tissue() -> None:
    with pytest.raises(ValueError, match="every Tissue"):
        ContrastModel(tissue={Tissue.CSF: 1.0}, vessel_darkening=dict.fromkeys(Tissue, 0.0))


def test_cisternography_csf_brighter_than_parenchyma(
    default_subject: dict[str, np.ndarray],
) -> None:
    label, image = default_subject["label"], default_subject["cisternography"]
    brain = np.isin(label, BRAIN_LABELS)
    csf_layer = ndimage.binary_dilation(brain, iterations=2) & (label == 0)
    assert image[csf_layer].mean() > 1.5 * image[label == 1].mean()
    assert image[label == 1].mean() > 3 * image[0:4, 0:4, :].mean()  # background is dark


def test_cisternography_vessels_in_csf_are_flow_voids(
    default_subject: dict[str, np.ndarray],
) -> None:
    label, image = default_subject["label"], default_subject["cisternography"]
    vessels = label == VESSEL_LABEL
    brain = np.isin(label, BRAIN_LABELS)
    near_brain = ndimage.binary_dilation(brain, iterations=3)
    in_csf = vessels & near_brain & ~ndimage.binary_dilation(brain)
    shell = (
        ndimage.binary_dilation(vessels, iterations=2)
        & ~ndimage.binary_dilation(vessels)
        & (label == 0)
        & near_brain
        & ~brain
    )
    assert in_csf.sum() > 20
    assert image[in_csf].mean() < 0.75 * image[shell].mean()


def test_cisternography_vessels_in_parenchyma_are_faint(
    default_subject: dict[str, np.ndarray],
) -> None:
    """Vessels fully inside brain tissue are only a little darker than the tissue around them."""
    label, image = default_subject["label"], default_subject["cisternography"]
    embedded = (label == VESSEL_LABEL) & ~ndimage.binary_dilation(label == 0)
    assert embedded.sum() > 20
    ratio = image[embedded].mean() / image[label == 1].mean()
    assert 0.6 < ratio < 1.0


def test_angiography_vessels_brightest(default_subject: dict[str, np.ndarray]) -> None:
    label, image = default_subject["label"], default_subject["angiography"]
    vessels = image[label == VESSEL_LABEL].mean()
    assert vessels > 2 * image[label == 1].mean()
    assert vessels > 2 * image[(label == 0) & (image > 0)].mean()
