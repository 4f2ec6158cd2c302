"""Tests for datamodules.phantom.geometry: grid checks, the affine and smooth random fields."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.phantom.geometry import phantom_affine, smooth_random_field, validated_geometry


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((96, 96, 64), (2.0, 2.0, 2.0)), ((24, 20, 16), (1.0, 1.5, 3.0)), ((17, 16, 16), (1, 1, 1))],
)
def test_phantom_affine_centres_the_volume(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> None:
    affine = phantom_affine(shape, spacing)
    assert affine.shape == (4, 4)
    np.testing.assert_allclose(np.diag(affine)[:3], spacing)
    centre = np.array([(n - 1) / 2 for n in shape] + [1.0])
    np.testing.assert_allclose(affine @ centre, [0, 0, 0, 1], atol=1e-9)


def test_validated_geometry_normalises_types() -> None:
    assert validated_geometry((16.0, 20, 24), (1, 2, 3)) == ((16, 20, 24), (1.0, 2.0, 3.0))


@pytest.mark.parametrize(
    ("shape", "spacing", "match"),
    [
        ((8, 48, 32), (2, 2, 2), "shape"),
        ((16.5, 16, 16), (2, 2, 2), "shape"),
        ((16, 16), (2, 2, 2), "shape"),
        ((16, 16, 16), (2, 0, 2), "spacing"),
        ((16, 16, 16), (2, 2, float("inf")), "spacing"),
    ],
)
def test_validated_geometry_rejects_bad_grids(
    shape: tuple[float, ...], spacing: tuple[float, ...], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        validated_geometry(shape, spacing)


def test_smooth_random_field_is_standardised_and_seeded() -> None:
    field = smooth_random_field(np.random.default_rng(0), (20, 18, 16), 4)
    assert field.shape == (20, 18, 16)
    assert field.dtype == np.float32
    assert abs(float(field.mean())) < 1e-5
    assert float(field.std()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(
        field, smooth_random_field(np.random.default_rng(0), field.shape, 4)
    )
