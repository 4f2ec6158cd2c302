"""Weak-label simulation on the phantom: determinism, severity, slice-wise noise, composition
and specs. Thin labels, Dice and draw records have their own test files."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import itertools

import numpy as np
import pytest

import datamodules.weak_labels as weak_labels
from datamodules.phantom import CLASS_NAMES, VESSEL_LABEL, generate_subject
from datamodules.weak_labels import (
    MissingStructures,
    NoisyBoundaries,
    SparseSlices,
    apply_weak_label,
    label_dice,
    parse_mode,
    resolve_modes,
    sample_weak_label,
)

SHAPE = (48, 48, 32)
CLASSES = {0, 1, 2, 3, 4}
NO_NOISE = NoisyBoundaries(
    boundary_probability=0.0,
    shift_probability=0.0,
    blobs_per_slice=0.0,
    vessel_drop_probability=0.0,
)


def simulate(label: np.ndarray, modes: list, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`simulate_weak_label` with the phantom's vessels as thin structures, as its data module
    resolves them."""
    modes = resolve_modes(modes, thin_labels=(VESSEL_LABEL,))
    return weak_labels.simulate_weak_label(label, modes, seed=seed)


def quality(weak: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """`label_dice` with the phantom's classes."""
    return label_dice(
        weak, truth, mask=mask, num_classes=1 + len(CLASS_NAMES), class_names=CLASS_NAMES
    )


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """A small phantom label volume, every class present."""
    label = generate_subject(np.random.default_rng([0, 0]), shape=SHAPE)["label"]
    assert set(np.unique(label).tolist()) == CLASSES
    return label


def labelled_slices(mask: np.ndarray, axis: int = 2) -> np.ndarray:
    """Indices of the slices along ``axis`` that hold any labelled voxel."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    return np.flatnonzero(mask.any(axis=other))


@pytest.mark.parametrize(
    "modes",
    [["sparse:4"], ["sparse:0.3"], ["noisy:mild"], ["noisy:severe"], ["missing:0.3"]],
)
def test_same_seed_same_output_and_input_untouched(truth: np.ndarray, modes: list[str]) -> None:
    before = truth.copy()
    weak, mask = simulate(truth, modes, seed=3)
    again, again_mask = simulate(truth, modes, seed=3)
    np.testing.assert_array_equal(weak, again)
    np.testing.assert_array_equal(mask, again_mask)
    np.testing.assert_array_equal(truth, before)
    assert weak is not truth and weak.dtype == truth.dtype and weak.shape == truth.shape
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 1}


@pytest.mark.parametrize("modes", [["sparse:0.3"], ["noisy:mild"], ["missing:0.3"]])
def test_different_seed_different_output(truth: np.ndarray, modes: list[str]) -> None:
    weak, mask = simulate(truth, modes, seed=0)
    other, other_mask = simulate(truth, modes, seed=1)
    assert not (np.array_equal(weak, other) and np.array_equal(mask, other_mask))


def test_sparse_offset_is_drawn_per_seed_unless_given(truth: np.ndarray) -> None:
    offsets = {int(labelled_slices(simulate(truth, ["sparse:4"], seed=s)[1])[0]) for s in range(8)}
    assert len(offsets) > 1 and offsets <= {0, 1, 2, 3}
    _, mask = simulate(truth, [{"mode": "sparse", "k": 4, "offset": 2}], seed=5)
    np.testing.assert_array_equal(labelled_slices(mask), np.arange(2, SHAPE[2], 4))


def test_replayed_draws_give_the_same_weak_label(truth: np.ndarray) -> None:
    modes = ["missing:0.3", "noisy:severe", "sparse:0.4"]
    draws = sample_weak_label(truth, resolve_modes(modes, thin_labels=(VESSEL_LABEL,)), seed=7)
    assert [type(d).__name__ for d in draws] == ["MissingDraw", "NoisyDraw", "SparseDraw"]
    recorded = [dataclasses.asdict(d) for d in draws]  # plain ints and tuples: loggable
    assert all(isinstance(i, int) for i in recorded[2]["slices"])
    replayed = apply_weak_label(truth, draws)
    expected = simulate(truth, modes, seed=7)
    for got, want in zip(replayed, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_sparse_k_keeps_every_kth_slice_and_dice_falls(truth: np.ndarray) -> None:
    fractions, dice = [], []
    for k in (1, 2, 4, 8):
        weak, mask = simulate(truth, [{"mode": "sparse", "k": k}], seed=0)
        slices = labelled_slices(mask)
        assert np.all(np.diff(slices) == k)
        assert mask[..., slices].all()  # labelled slices are labelled whole
        np.testing.assert_array_equal(weak[..., slices], truth[..., slices])
        assert not weak[mask == 0].any()  # no truth leaks into unlabelled voxels
        assert quality(weak, truth, mask)["dice_mean"] == 1.0
        fractions.append(quality(weak, truth, mask)["labelled_fraction"])
        dice.append(quality(weak, truth)["dice_mean"])
    assert fractions == [1.0, 0.5, 0.25, 0.125]
    assert dice[0] == 1.0 and dice == sorted(dice, reverse=True) and len(set(dice)) == 4


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.4, 0.5])
def test_sparse_fraction_never_labels_adjacent_slices(truth: np.ndarray, fraction: float) -> None:
    seen = set()
    for seed in range(20):
        _, mask = simulate(truth, [f"sparse:fraction={fraction}"], seed=seed)
        slices = labelled_slices(mask)
        assert len(slices) == round(fraction * SHAPE[2])
        assert np.all(np.diff(slices) >= 2)
        seen.add(tuple(slices))
    assert len(seen) > 1


def test_sparse_half_of_an_odd_stack_is_every_other_slice() -> None:
    for seed in range(5):
        _, mask = simulate(np.zeros((2, 2, 7), np.uint8), ["sparse:0.5"], seed=seed)
        np.testing.assert_array_equal(labelled_slices(mask), [0, 2, 4, 6])  # the only way


def test_sparse_along_another_axis(truth: np.ndarray) -> None:
    _, mask = simulate(truth, [{"mode": "sparse", "k": 3, "axis": 0}], seed=0)
    assert np.all(np.diff(labelled_slices(mask, axis=0)) == 3)
    assert mask.any(axis=(0, 1)).all()  # every axial slice keeps some labelled voxels


def test_noisy_dice_falls_from_none_to_mild_to_severe(truth: np.ndarray) -> None:
    clean, mask = simulate(truth, [NO_NOISE], seed=0)
    np.testing.assert_array_equal(clean, truth)
    assert mask.all()
    mild = quality(simulate(truth, ["noisy:mild"], seed=0)[0], truth)
    severe = quality(simulate(truth, ["noisy:severe"], seed=0)[0], truth)
    assert 1.0 > mild["dice_mean"] > severe["dice_mean"] > 0.3
    for name in ("cerebrum", "cerebellum", "brainstem", "vessels"):
        assert 1.0 > mild[f"dice_{name}"] > severe[f"dice_{name}"] > 0.0, name
    assert mild["labelled_fraction"] == severe["labelled_fraction"] == 1.0


@pytest.mark.parametrize("preset", ["mild", "severe"])
def test_noisy_boundaries_change_slice_by_slice(truth: np.ndarray, preset: str) -> None:
    weak, _ = simulate(truth, [f"noisy:{preset}"], seed=0)
    assert set(np.unique(weak).tolist()) <= CLASSES
    area = (truth == 1).sum(axis=(0, 1))
    present = area > 20
    ratio = (weak == 1).sum(axis=(0, 1))[present] / area[present]
    assert ratio.min() < 0.95 and ratio.max() > 1.05  # eroded in some slices, dilated in others
    assert np.std(ratio) > 0.03
    # Slice-to-slice jumps of the boundary: far more disagreement between neighbouring slices.
    jumps = np.mean(weak[..., 1:] != weak[..., :-1])
    assert jumps > np.mean(truth[..., 1:] != truth[..., :-1])


def test_noisy_parts_each_act(truth: np.ndarray) -> None:
    """Each kind of noise alone changes the label; shifts move whole slices."""
    off = dataclasses.asdict(NO_NOISE)
    for field, value in [
        ("boundary_probability", 1.0),
        ("blobs_per_slice", 2.0),
        ("vessel_drop_probability", 1.0),
    ]:
        weak, _ = simulate(truth, [NoisyBoundaries(**off | {field: value})], seed=0)
        assert not np.array_equal(weak, truth), field
    dropped, _ = simulate(
        truth, [NoisyBoundaries(**off | {"vessel_drop_probability": 1.0})], seed=0
    )
    assert (dropped == 4).sum() < (truth == 4).sum()
    assert np.all((dropped == truth) | (truth == 4))  # only vessel voxels change
    gone = (truth == 4) & (dropped != 4)
    assert (dropped[gone] == 1).any()  # a vessel dropped in the cerebrum becomes cerebrum
    draw = sample_weak_label(truth, [NoisyBoundaries(**off | {"shift_probability": 1.0})], seed=0)
    shifted, _ = apply_weak_label(truth, draw)
    index, di, dj = draw[0].shifts[16]
    moved = np.roll(truth[..., index], (di, dj), axis=(0, 1))  # the head is far from the edges
    np.testing.assert_array_equal(shifted[..., index], moved)


def test_missing_fraction_up_labelled_fraction_down(truth: np.ndarray) -> None:
    labelled, dice, masks = [], [], []
    for fraction in (0.0, 0.1, 0.25, 0.5, 1.0):
        weak, mask = simulate(truth, [f"missing:{fraction}"], seed=0)
        masks.append(mask)
        labelled.append(quality(weak, truth, mask)["labelled_fraction"])
        dice.append(quality(weak, truth)["dice_mean"])
        assert np.array_equal(weak[mask == 1], truth[mask == 1])  # what stays labelled is right
    assert labelled[0] == 1.0 and labelled == sorted(labelled, reverse=True)
    assert len(set(labelled)) == 5
    assert labelled[-1] == pytest.approx(np.mean(truth == 0))  # only background is left
    assert dice[0] == 1.0 and dice == sorted(dice, reverse=True) and dice[-1] == 0.0
    for less, more in itertools.pairwise(masks):  # one seed: nested missing sets
        assert np.all(less >= more)


def test_missing_fill_background_keeps_voxels_labelled(truth: np.ndarray) -> None:
    spec = {"mode": "missing", "fraction": 0.5, "classes": [2, 3], "fill": "background"}
    weak, mask = simulate(truth, [spec], seed=0)
    assert mask.all()
    changed = weak != truth
    assert changed.any() and set(np.unique(truth[changed]).tolist()) <= {2, 3}
    assert not weak[changed].any()


def test_sparse_plus_noisy(truth: np.ndarray) -> None:
    weak, mask = simulate(truth, ["sparse:4", "noisy:severe"], seed=0)
    slices = labelled_slices(mask)
    assert np.all(np.diff(slices) == 4) and mask[..., slices].all()
    assert not weak[mask == 0].any()
    assert set(np.unique(weak).tolist()) <= CLASSES
    noisy = quality(weak, truth, mask)
    assert noisy["labelled_fraction"] == 0.25
    assert noisy["dice_mean"] < 0.9  # the labelled slices are noisy
    sparse_only, sparse_mask = simulate(truth, ["sparse:4"], seed=0)
    np.testing.assert_array_equal(mask, sparse_mask)
    assert quality(weak, truth)["dice_mean"] < quality(sparse_only, truth)["dice_mean"]


def test_empty_modes_give_the_full_label(truth: np.ndarray) -> None:
    weak, mask = simulate(truth, [], seed=0)
    np.testing.assert_array_equal(weak, truth)
    assert mask.all()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sparse:4", SparseSlices(k=4)),
        ("sparse:0.25", SparseSlices(fraction=0.25)),
        ("sparse:k=8,axis=0", SparseSlices(k=8, axis=0)),
        ({"mode": "sparse", "k": 4}, SparseSlices(k=4)),
        ("noisy", NoisyBoundaries()),
        ("noisy:mild", NoisyBoundaries()),
        ("noisy:severe", NoisyBoundaries(**NoisyBoundaries.PRESETS["severe"])),
        (
            {"mode": "noisy", "severity": "severe", "max_shift": 0},
            NoisyBoundaries(**NoisyBoundaries.PRESETS["severe"] | {"max_shift": 0}),
        ),
        ("missing:0.5", MissingStructures(fraction=0.5)),
        ("missing:fill=background", MissingStructures(fill="background")),
        ({"mode": "missing", "classes": [4]}, MissingStructures(classes=(4,))),
        (SparseSlices(k=2), SparseSlices(k=2)),
    ],
)
def test_parse_mode(spec: object, expected: object) -> None:
    assert parse_mode(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("blur", "unknown mode 'blur'"),
        ({"k": 4}, "unknown mode None"),
        ("sparse", "exactly one of k and fraction"),
        ("sparse:0", "sparse k must be >= 1, got 0"),
        ("sparse:four", "sparse severity .* got 'four'"),
        ("sparse:0.7", "sparse fraction must lie in .* got 0.7"),
        ({"mode": "sparse", "k": 4, "fraction": 0.2}, "exactly one of k and fraction"),
        ({"mode": "sparse", "k": 4, "offset": 4}, "offset must be < k=4, got 4"),
        ({"mode": "sparse", "k": 2.5}, "sparse k must be an integer, got 2.5"),
        ({"mode": "sparse", "k": 4, "depth": 2}, r"unknown sparse field\(s\) \['depth'\]"),
        ("noisy:extreme", "noisy severity must be one of .* got 'extreme'"),
        ("noisy:severe,max_shift=-1", "noisy max_shift must be >= 0, got -1"),
        ("noisy:max_radius=0", "noisy max_radius must be >= 1, got 0"),
        ({"mode": "noisy", "boundary_probability": 1.5}, "boundary_probability .* got 1.5"),
        ("noisy:mild,severe", "expected field=value, got 'severe'"),
        ("missing:1.5", "missing fraction must lie in .* got 1.5"),
        ("missing:fill=zero", "missing fill must be one of .* got 'zero'"),
        ({"mode": "missing", "classes": [0]}, "missing classes must be >= 1, got 0"),
        (42, "got 42"),
    ],
)
def test_bad_specs_raise_value_error(truth: np.ndarray, spec: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        simulate(truth, [spec], seed=0)


@pytest.mark.parametrize(
    ("label", "modes", "seed", "match"),
    [
        (np.zeros((4, 4), np.uint8), ["sparse:2"], 0, "3D volume"),
        (np.zeros((4, 4, 4), np.float32), ["sparse:2"], 0, "integer classes"),
        (np.zeros((4, 4, 4), np.uint8), ["sparse:2"], -1, "seed must be >= 0, got -1"),
        (np.zeros((4, 4, 4), np.uint8), ["sparse:2,axis=3"], 0, "axis 3 is out of range"),
    ],
)
def test_bad_inputs_raise_value_error(
    label: np.ndarray, modes: list[str], seed: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        simulate(label, modes, seed=seed)


@pytest.mark.parametrize(
    "module", ["", "._checks", ".dice", ".missing", ".noisy", ".records", ".simulate", ".sparse"]
)
def test_module_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"datamodules.weak_labels{module}"))
    assert result.attempted >= 1 and result.failed == 0
