"""Draws as data: records of every mode survive JSON and replay the same weak label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamodules.phantom import VESSEL_LABEL, generate_subject
from datamodules.weak_labels import (
    MissingDraw,
    NoisyDraw,
    SparseDraw,
    apply_weak_label,
    draws_from_records,
    draws_to_records,
    resolve_modes,
    sample_weak_label,
    simulate_weak_label,
)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """A small phantom label volume, every class present."""
    return generate_subject(np.random.default_rng([0, 0]), shape=(48, 48, 32))["label"]


def json_round_trip(draws: tuple) -> tuple:
    """The draws as a run would log them (a JSON text) and read them back."""
    return draws_from_records(json.loads(json.dumps(draws_to_records(draws))))


@pytest.mark.parametrize(
    "modes",
    [
        ["sparse:4"],
        ["sparse:0.3"],
        ["noisy:severe"],
        ["noisy:mild,thin_labels=4+3"],
        ["noisy:severe,thin_labels=none"],
        ["missing:0.4"],
        [{"mode": "missing", "fraction": 0.5, "fill": "background", "classes": [2, 4]}],
        ["missing:0.2", "noisy:severe", "sparse:0.4"],
    ],
)
def test_records_replay_every_mode_through_json(truth: np.ndarray, modes: list) -> None:
    modes = resolve_modes(modes, thin_labels=(VESSEL_LABEL,))
    draws = sample_weak_label(truth, modes, seed=3)
    replayed = json_round_trip(draws)
    assert replayed == draws
    assert [type(draw) for draw in replayed] == [type(draw) for draw in draws]
    weak, mask = apply_weak_label(truth, replayed)
    expected_weak, expected_mask = simulate_weak_label(truth, modes, seed=3)
    np.testing.assert_array_equal(weak, expected_weak)
    np.testing.assert_array_equal(mask, expected_mask)
    assert not np.array_equal(weak, truth) or not mask.all()  # the draws did something


def test_a_record_is_the_mode_and_the_fields_as_plain_json() -> None:
    draws = (
        SparseDraw(axis=2, slices=(np.int64(1), 5)),
        NoisyDraw(2, (4,), ((0, 1, -1),), ((0, 3, 4),), ((1, 2, 2, 1, 3),), ((1, 0, 1),)),
        MissingDraw(axis=0, fill="background", dropped=((3, 2),)),
    )
    records = draws_to_records(draws)
    assert records == [
        {"mode": "sparse", "axis": 2, "slices": [1, 5]},
        {
            "mode": "noisy",
            "axis": 2,
            "thin_labels": [4],
            "boundary": [[0, 1, -1]],
            "dropped_vessels": [[0, 3, 4]],
            "blobs": [[1, 2, 2, 1, 3]],
            "shifts": [[1, 0, 1]],
        },
        {"mode": "missing", "axis": 0, "fill": "background", "dropped": [[3, 2]]},
    ]
    assert type(records[0]["slices"][0]) is int  # numpy scalars become plain ints
    assert json.loads(json.dumps(records)) == records
    assert draws_from_records(records) == draws


@pytest.mark.parametrize(
    ("records", "match"),
    [
        ([{"mode": "blur", "axis": 2}], r"record 0: unknown mode 'blur'"),
        ([{"axis": 2, "slices": [1]}], "record 0: unknown mode None"),
        (
            [{"mode": "sparse", "axis": 2, "slices": []}, {"mode": "sparse", "axis": 2}],
            r"record 1 \(sparse\): fields \['axis'\], expected \['axis', 'slices'\]",
        ),
        (
            [{"mode": "sparse", "axis": 2, "slices": [], "k": 2}],
            r"fields \['axis', 'k', 'slices'\]",
        ),
        (["sparse"], "record 0 must be a mapping, got 'sparse'"),
    ],
)
def test_bad_records_raise_value_error(records: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        draws_from_records(records)


def test_only_draws_become_records() -> None:
    with pytest.raises(ValueError, match="expected a weak-label draw"):
        draws_to_records(resolve_modes(["sparse:2"], thin_labels=()))
