"""Thin structures of the ``noisy`` mode: ``thin_labels`` specs, `resolve_modes`, and that
their segments are dropped, not eroded, exactly as the single-``vessel_label`` code did."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from datamodules.weak_labels import (
    MissingStructures,
    NoisyBoundaries,
    NoisyDraw,
    SparseSlices,
    parse_mode,
    resolve_modes,
    sample_weak_label,
    simulate_weak_label,
)

DROPS_ONLY = {
    "mode": "noisy",
    "boundary_probability": 0.0,
    "shift_probability": 0.0,
    "blobs_per_slice": 0.0,
    "vessel_drop_probability": 1.0,
}


def small_truth() -> np.ndarray:
    """Tissue (1) holding a structure (2), a one-voxel-wide vessel (4) in every slice and, in
    slices 2 and 3, a thick vessel blob (4) that the thin line runs into."""
    truth = np.zeros((12, 12, 4), dtype=np.uint8)
    truth[2:10, 2:10, :] = 1
    truth[3:6, 3:6, :3] = 2
    truth[8, 2:10, :] = 4
    truth[5:8, 6:9, 2:] = 4
    return truth


def two_lines() -> np.ndarray:
    """Tissue (1) holding two one-voxel-wide lines, class 3 on row 3 and class 4 on row 7."""
    truth = np.zeros((12, 12, 2), dtype=np.uint8)
    truth[2:10, 2:10, :] = 1
    truth[3, 3:9, :] = 3
    truth[7, 3:9, :] = 4
    return truth


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("noisy", None),
        ("noisy:thin_labels=4", (4,)),
        ("noisy:mild,thin_labels=2+5", (2, 5)),
        ("noisy:severe,thin_labels= 5 + 2 ", (5, 2)),
        ("noisy:thin_labels=none", ()),
        ("noisy:thin_labels=None", ()),
        ({"mode": "noisy", "thin_labels": [2, 5]}, (2, 5)),
        ({"mode": "noisy", "thin_labels": 4}, (4,)),
        ({"mode": "noisy", "thin_labels": []}, ()),
        ({"mode": "noisy", "thin_labels": None}, None),
        (NoisyBoundaries(thin_labels=[3]), (3,)),
    ],
)
def test_thin_labels_specs(spec: object, expected: tuple[int, ...] | None) -> None:
    assert parse_mode(spec).thin_labels == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("noisy:thin_labels=0", "noisy thin_labels must be >= 1, got 0"),
        ("noisy:thin_labels=2+x", "noisy thin_labels must be an integer, got 'x'"),
        ("noisy:thin_labels=2+-1", "noisy thin_labels must be >= 1, got -1"),
        ("noisy:thin_labels=1.5", "noisy thin_labels must be an integer, got 1.5"),
        ("noisy:thin_labels=4+4", r"noisy thin_labels must not repeat a label, got \(4, 4\)"),
        ({"mode": "noisy", "thin_labels": "4"}, "noisy thin_labels must be integers, got '4'"),
        ({"mode": "noisy", "thin_labels": [True]}, "thin_labels must be an integer, got True"),
        ({"mode": "noisy", "thin_labels": 2.0}, "noisy thin_labels must be integers, got 2.0"),
        ("noisy:vessel_label=4", r"unknown noisy field\(s\) \['vessel_label'\]"),
    ],
)
def test_bad_thin_labels_raise_value_error(spec: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_mode(spec)


def test_resolve_modes_fills_only_unset_thin_labels() -> None:
    modes = resolve_modes(
        [
            "sparse:4",
            "noisy:mild",
            "noisy:severe,thin_labels=none",
            {"mode": "noisy", "thin_labels": [2]},
            MissingStructures(fraction=0.5),
        ],
        thin_labels=(4, 3),
    )
    assert modes == [
        SparseSlices(k=4),
        NoisyBoundaries(thin_labels=(4, 3)),
        NoisyBoundaries(**NoisyBoundaries.PRESETS["severe"], thin_labels=()),
        NoisyBoundaries(thin_labels=(2,)),
        MissingStructures(fraction=0.5),
    ]
    assert resolve_modes(["noisy"], thin_labels=())[0].thin_labels == ()
    assert resolve_modes([], thin_labels=(4,)) == []


@pytest.mark.parametrize(
    ("specs", "thin_labels", "match"),
    [
        (["noisy"], (0,), "resolve_modes thin_labels must be >= 1, got 0"),
        (["noisy"], "4", "resolve_modes thin_labels must be integers, got '4'"),
        (["noisy:extreme"], (4,), "noisy severity must be one of"),
    ],
)
def test_resolve_modes_errors(specs: list, thin_labels: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_modes(specs, thin_labels=thin_labels)


def test_unset_thin_labels_sample_as_none() -> None:
    truth = small_truth()
    (unset,) = sample_weak_label(truth, [DROPS_ONLY | {"boundary_probability": 1.0}], seed=0)
    (empty,) = sample_weak_label(
        truth, [DROPS_ONLY | {"boundary_probability": 1.0, "thin_labels": []}], seed=0
    )
    assert unset == empty and unset.thin_labels == () and unset.dropped_vessels == ()
    assert 4 in {cls for _, cls, _ in unset.boundary}  # a class like any other: it erodes


def test_thin_segments_are_dropped_as_the_surrounding_tissue() -> None:
    truth = small_truth()
    truth[8, [2, 9], :] = 1  # the line ends inside the tissue: tissue all around it
    (draw,) = sample_weak_label(truth, [DROPS_ONLY | {"thin_labels": [4]}], seed=0)
    # One voxel (the first) of each thin segment: the line in slices 0 and 1 only; where it
    # runs into the thick blob, the segment is too deep to be thin.
    assert draw.dropped_vessels == ((0, 8, 3), (1, 8, 3))
    weak, mask = simulate_weak_label(truth, [DROPS_ONLY | {"thin_labels": [4]}], seed=0)
    expected = truth.copy()
    expected[8, 3:9, :2] = 1  # the tissue around it
    np.testing.assert_array_equal(weak, expected)
    assert mask.all()


@pytest.mark.parametrize(("thin_labels", "order"), [((3, 4), [3, 4]), ((4, 3), [4, 3])])
def test_several_thin_labels_are_handled_in_the_given_order(
    thin_labels: tuple[int, ...], order: list[int]
) -> None:
    truth = two_lines()
    spec = DROPS_ONLY | {"thin_labels": list(thin_labels)}
    (draw,) = sample_weak_label(truth, [spec], seed=0)
    assert draw.thin_labels == thin_labels
    for index in range(truth.shape[2]):
        entries = [(i, j) for s, i, j in draw.dropped_vessels if s == index]
        assert [int(truth[i, j, index]) for i, j in entries] == order
    weak, _ = simulate_weak_label(truth, [spec], seed=0)
    expected = truth.copy()
    expected[expected > 1] = 1
    np.testing.assert_array_equal(weak, expected)


def test_a_dropped_segment_never_takes_another_thin_class_with_it() -> None:
    """A class-3 segment dropped next to class 4 becomes 4; that 4 stays, not being dropped."""
    truth = np.zeros((7, 7, 1), dtype=np.uint8)
    truth[0, :, 0] = 3  # its nearest other class is the 4 below
    truth[1:4, :, 0] = 4
    truth[4:, :, 0] = 1
    draw = NoisyDraw(2, (3, 4), boundary=(), dropped_vessels=((0, 0, 0),), blobs=(), shifts=())
    weak, _ = draw.apply(truth, np.ones_like(truth))
    expected = truth.copy()
    expected[0, :, 0] = 4
    np.testing.assert_array_equal(weak, expected)


# Recorded from the code before thin_labels (one thin class, `vessel_label=4`), for
# `small_truth()`, the spec below and seed 0: the new code must draw and apply the same.
GOLDEN_SPEC = {"mode": "noisy", "severity": "severe", "vessel_drop_probability": 0.7}
GOLDEN_SPEC |= {"max_blob_radius": 1}
GOLDEN_DRAW = {
    "boundary": ((0, 1, -2), (0, 2, 2), (1, 1, 2), (1, 2, -2), (2, 1, 1), (2, 2, 2), (3, 1, 2)),
    "dropped_vessels": ((0, 8, 2), (1, 8, 2)),
    "blobs": ((2, 9, 7, 1, 2), (2, 2, 5, 1, 4), (3, 6, 3, 1, 4), (3, 5, 3, 1, 4), (3, 5, 9, 1, 1)),
    "shifts": ((2, 2, -1), (3, 2, 1)),
}
GOLDEN_WEAK_SHA256 = "f4b7f5e3738b4b219d2c26a6fb4927043b3af347609ebdcc024b2f47926dbba4"


@pytest.mark.parametrize("how", ["string", "resolved"])
def test_one_thin_label_draws_as_the_vessel_label_code_did(how: str) -> None:
    truth = small_truth()
    if how == "string":
        modes = [GOLDEN_SPEC | {"thin_labels": 4}]
    else:
        modes = resolve_modes([GOLDEN_SPEC], thin_labels=(4,))
    (draw,) = sample_weak_label(truth, modes, seed=0)
    assert draw.thin_labels == (4,)
    assert {key: getattr(draw, key) for key in GOLDEN_DRAW} == GOLDEN_DRAW
    weak, mask = simulate_weak_label(truth, modes, seed=0)
    assert weak.dtype == np.uint8 and mask.all()
    assert hashlib.sha256(weak.tobytes()).hexdigest() == GOLDEN_WEAK_SHA256
