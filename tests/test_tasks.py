"""Tests for datamodules.tasks: parse_task over a class map, and its validation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from datamodules.tasks import BACKGROUND, Task, parse_task

CLASS_MAP = {1: "cerebrum", 2: "cerebellum", 3: "brainstem", 4: "vessels"}


@pytest.mark.parametrize(
    ("task", "class_map", "class_names", "label_values", "to_index"),
    [
        (
            "multiclass",
            CLASS_MAP,
            ("background", "cerebrum", "cerebellum", "brainstem", "vessels"),
            (0, 1, 2, 3, 4),
            {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
        ),
        # label values need not be consecutive nor given in order: classes follow the values
        (
            "multiclass",
            {7: "vessels", 2: "cerebrum", 5: "cerebellum"},
            ("background", "cerebrum", "cerebellum", "vessels"),
            (0, 2, 5, 7),
            {0: 0, 2: 1, 5: 2, 7: 3},
        ),
        ("multiclass", {3: "tumour"}, ("background", "tumour"), (0, 3), {0: 0, 3: 1}),
        (
            "binary:cerebellum",
            CLASS_MAP,
            ("background", "cerebellum"),
            (0, 2),
            {0: 0, 1: 0, 2: 1, 3: 0, 4: 0},
        ),
        (
            "binary:vessels",
            {7: "vessels", 2: "cerebrum", 5: "cerebellum"},
            ("background", "vessels"),
            (0, 7),
            {0: 0, 2: 0, 5: 0, 7: 1},
        ),
        ("binary:tumour", {3: "tumour"}, ("background", "tumour"), (0, 3), {0: 0, 3: 1}),
    ],
)
def test_parse_task(
    task: str,
    class_map: Mapping[int, str],
    class_names: tuple[str, ...],
    label_values: tuple[int, ...],
    to_index: dict[int, int],
) -> None:
    parsed = parse_task(task, class_map)
    assert isinstance(parsed, Task)
    assert parsed.name == task
    assert parsed.class_names == class_names
    assert parsed.label_values == label_values
    assert dict(parsed.to_index) == to_index
    assert parsed.num_classes == len(class_names)
    assert parsed.structures == class_names[1:]


@pytest.mark.parametrize(
    "task", ["multiclass", "binary:cerebrum", "binary:brainstem", "binary:vessels"]
)
def test_label_values_and_to_index_are_inverse(task: str) -> None:
    """Mapping a class index to its label value and back gives the index again."""
    parsed = parse_task(task, CLASS_MAP)
    assert parsed.class_names[0] == BACKGROUND
    assert parsed.label_values[0] == 0
    assert len(parsed.label_values) == parsed.num_classes
    for index, value in enumerate(parsed.label_values):
        assert parsed.to_index[value] == index
    # every label value of the class map (and background) has an index in range
    assert set(parsed.to_index) == {0, *CLASS_MAP}
    assert set(parsed.to_index.values()) == set(range(parsed.num_classes))


def test_parse_task_leaves_the_class_map_alone() -> None:
    class_map = dict(CLASS_MAP)
    parse_task("binary:cerebrum", class_map)
    parse_task("multiclass", class_map)
    assert class_map == CLASS_MAP


@pytest.mark.parametrize(
    ("task", "class_map", "message"),
    [
        ("multi", CLASS_MAP, "unknown task 'multi'"),
        ("Multiclass", CLASS_MAP, "unknown task"),
        ("binary", CLASS_MAP, "unknown task 'binary'"),
        ("", CLASS_MAP, "unknown task"),
        ("binary:thalamus", CLASS_MAP, "unknown structure 'thalamus'"),
        ("binary:Cerebrum", CLASS_MAP, "unknown structure 'Cerebrum'"),
        ("binary:", CLASS_MAP, "unknown structure ''"),
        ("binary:background", CLASS_MAP, "unknown structure 'background'"),
        ("multiclass", {}, "empty"),
        ("binary:cerebrum", {}, "empty"),
        ("multiclass", {0: "cerebrum"}, "positive"),
        ("multiclass", {1: "cerebrum", -2: "vessels"}, "positive"),
        ("multiclass", {1.5: "cerebrum"}, "positive"),
        ("multiclass", {"1": "cerebrum"}, "positive"),
        ("multiclass", {1: "cerebrum", 2: "cerebrum"}, "unique"),
        ("binary:cerebrum", {1: "cerebrum", 2: "cerebrum"}, "unique"),
        ("multiclass", {1: "background"}, "'background'"),
        ("multiclass", {1: "cerebrum", 2: "background"}, "'background'"),
        ("multiclass", {1: ""}, "identifier"),
        ("multiclass", {1: "white matter"}, "identifier"),
        ("multiclass", {1: "val/dice"}, "identifier"),
    ],
)
def test_parse_task_rejects(task: str, class_map: Mapping[object, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_task(task, class_map)


def test_non_string_name_raises_value_error() -> None:
    with pytest.raises(ValueError, match="123"):
        parse_task("multiclass", {1: 123})  # type: ignore[dict-item]


def test_numpy_integer_label_values_are_accepted() -> None:
    """Class maps built from ``np.unique`` carry numpy integers."""
    import numpy as np

    task = parse_task("multiclass", {np.int64(2): "cerebellum", np.int64(1): "cerebrum"})
    assert task.label_values == (0, 1, 2)
    assert all(type(value) is int for value in task.label_values)
