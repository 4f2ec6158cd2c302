"""Tests for datamodules.phantom.shapes and .vessels: tube distances and the vessel tree."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.phantom.anatomy import ANATOMY, VARIABILITY
from datamodules.phantom.shapes import Ellipsoid, Tube, tube_distance
from datamodules.phantom.vessels import VesselTree, rasterise_vessels, sample_vessel_tree


def points(*xyz: tuple[float, float, float]) -> list[np.ndarray]:
    """x, y and z arrays of a few points, as the shapes take them."""
    return [np.array(axis, dtype=np.float32) for axis in zip(*xyz, strict=True)]


def test_ellipsoid_level_and_mirror() -> None:
    ellipsoid = Ellipsoid((10.0, 0.0, 0.0), (2.0, 4.0, 8.0))
    level = ellipsoid.level(points((10, 0, 0), (12, 0, 0), (10, 0, 16)))
    np.testing.assert_allclose(level, [0.0, 1.0, 4.0])
    assert ellipsoid.mirrored().center == (-10.0, 0.0, 0.0)


def test_tube_distance_tapers_and_is_negative_inside() -> None:
    tube = Tube((0.0, 0.0, 0.0), (0.0, 0.0, 10.0), 2.0, 1.0)
    distance = tube_distance(points((0, 0, 0), (3, 0, 0), (3, 0, 10), (0, 0, 12)), tube)
    np.testing.assert_allclose(distance, [-2.0, 1.0, 2.0, 1.0], atol=1e-6)


@pytest.fixture(scope="module")
def tree() -> VesselTree:
    """The vessel tree of generator 0 with a 0.8 mm radius floor."""
    return sample_vessel_tree(np.random.default_rng(0), VARIABILITY, ANATOMY, min_radius_mm=0.8)


def test_vessel_tree_radii_are_clipped(tree: VesselTree) -> None:
    radii = np.concatenate([tree.radius_starts, tree.radius_ends])
    assert radii.min() >= 0.8
    assert radii.max() <= VARIABILITY.vessel_max_radius_mm
    assert len(tree.starts) == len(tree.ends) == len(tree.sheathed) > 50
    assert tree.sheathed.any() and not tree.sheathed.all()


def test_vessel_tree_is_a_function_of_the_generator_state(tree: VesselTree) -> None:
    again = sample_vessel_tree(np.random.default_rng(0), VARIABILITY, ANATOMY, min_radius_mm=0.8)
    np.testing.assert_array_equal(tree.starts, again.starts)
    np.testing.assert_array_equal(tree.radius_ends, again.radius_ends)


def test_rasterised_vessels_match_the_segment_distances(tree: VesselTree) -> None:
    """Block-wise rasterisation gives each voxel its distance to the nearest segment wall."""
    axis = np.linspace(-40.0, 40.0, 20, dtype=np.float32)
    coords = list(np.meshgrid(axis, axis, axis - 20.0, indexing="ij"))
    field = rasterise_vessels(coords, tree, reach_mm=3.0)
    assert (field.surface <= 0).any()
    near = field.surface < 3.0
    brute = np.min(
        [
            tube_distance(coords, Tube(tuple(s), tuple(e), float(r0), float(r1)))
            for s, e, r0, r1 in zip(
                tree.starts, tree.ends, tree.radius_starts, tree.radius_ends, strict=True
            )
        ],
        axis=0,
    )
    np.testing.assert_allclose(field.surface[near], brute[near], atol=1e-4)
    assert np.all(field.sheath >= field.surface)
