"""Slice selection of the label-cleansing thread: never adjacent, and what each rule claims."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.slice_selection import (
    SliceSelection,
    SliceSelectionError,
    labelled_slices,
    slice_groups,
)


def random_labelled(rng: np.random.Generator, n_slices: int) -> list[int]:
    """A random set of labelled slices: runs of adjacent ones and gaps."""
    return sorted(rng.choice(n_slices, size=rng.integers(1, n_slices + 1), replace=False).tolist())


@pytest.mark.parametrize(
    "options",
    [
        {"stride": 1},
        {"stride": 2},
        {"stride": 3, "offset": 1},
        {"stride": 1, "min_gap": 3},
        {"fraction": 0.5},
        {"fraction": 1.0, "min_gap": 2},
        {"folds": 2},
        {"folds": 3},
    ],
)
def test_no_subset_ever_holds_two_adjacent_slices(options):
    rng = np.random.default_rng(0)
    selection = SliceSelection(**options)
    for _ in range(200):
        labelled = random_labelled(rng, 40)
        if len(labelled) < selection.folds:
            continue
        for subset in selection.subsets(labelled, n_slices=40, rng=rng):
            gaps = np.diff(subset)
            assert (gaps >= selection.min_gap).all(), (options, labelled, subset)
            assert set(subset) <= set(labelled)


def test_stride_keeps_every_kth_labelled_slice_from_the_offset():
    (subset,) = SliceSelection(stride=3, offset=1).subsets([0, 2, 4, 6, 8, 10, 12], n_slices=14)
    assert subset == (2, 8)


def test_stride_one_on_contiguous_slices_keeps_every_other_one():
    (subset,) = SliceSelection(stride=1).subsets(range(10), n_slices=10)
    assert subset == (0, 2, 4, 6, 8)


def test_sparse_labels_are_kept_whole_when_already_apart():
    (subset,) = SliceSelection().subsets([1, 5, 9, 13], n_slices=16)
    assert subset == (1, 5, 9, 13)


def test_folds_partition_the_labelled_slices_into_complementary_subsets():
    labelled = list(range(3, 30))
    subsets = SliceSelection(folds=2).subsets(labelled, n_slices=30)
    assert subsets == [tuple(range(3, 30, 2)), tuple(range(4, 30, 2))]
    three = SliceSelection(folds=3).subsets(labelled, n_slices=30)
    assert sorted(i for s in three for i in s) == labelled
    assert not set(three[0]) & set(three[1])


def test_a_random_fraction_is_seeded_and_has_the_share_asked():
    labelled = list(range(0, 60, 2))  # 30 labelled, non-adjacent
    first = SliceSelection(fraction=0.4).subsets(
        labelled, n_slices=60, rng=np.random.default_rng(3)
    )
    again = SliceSelection(fraction=0.4).subsets(
        labelled, n_slices=60, rng=np.random.default_rng(3)
    )
    other = SliceSelection(fraction=0.4).subsets(
        labelled, n_slices=60, rng=np.random.default_rng(4)
    )
    assert first == again and first != other
    assert len(first[0]) == 12


def test_slice_groups_and_labelled_slices():
    assert slice_groups([(0, 3), (1,)], n_slices=4, first=5).tolist() == [5, 6, 0, 5]
    mask = np.zeros((3, 4, 5), np.uint8)
    mask[0, 0, 1] = mask[2, 3, 4] = 1
    assert labelled_slices(mask, 2) == [1, 4]
    assert labelled_slices(mask, 0) == [0, 2]


@pytest.mark.parametrize(
    ("options", "labelled", "message"),
    [
        ({"stride": 50}, [0, 2], "stride 50 is larger than the volume's 20 slices along axis 2"),
        ({}, [], "no labelled slice along axis 2"),
        ({"folds": 3}, [0, 5], "2 labelled slices cannot be dealt into 3 folds"),
    ],
)
def test_selections_that_cannot_apply_are_refused(options, labelled, message):
    with pytest.raises(SliceSelectionError, match=message):
        SliceSelection(**options).subsets(labelled, n_slices=20)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"axis": 3}, "axis 3 does not exist"),
        ({"min_gap": 1}, "min_gap must be an integer >= 2"),
        ({"stride": 2, "offset": 2}, "offset must be < stride=2"),
        ({"fraction": 0.0}, r"fraction must lie in \(0, 1\]"),
        ({"fraction": 0.5, "folds": 2}, "without stride or folds"),
    ],
)
def test_bad_selection_options_are_refused(options, message):
    with pytest.raises(SliceSelectionError, match=message):
        SliceSelection(**options)
