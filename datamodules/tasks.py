"""Segmentation tasks over one class map: ``multiclass`` or ``binary:<structure>``.

The class map names the structures by their label value in the files
(``{1: "cerebrum", 2: "cerebellum", ...}``; 0 is always background). A task
decides which structures become training classes and how file label values map
to the consecutive class indices a network predicts, and back again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np

BACKGROUND = "background"
# `mean` would collide with the per-class means logged beside the structures (val/dice_mean).
RESERVED_NAMES = (BACKGROUND, "mean")


@dataclass(frozen=True)
class Task:
    """Which classes a model learns, and how file labels map to them.

    Attributes:
        name: ``multiclass`` or ``binary:<structure>``.
        class_names: class index -> name; index 0 is background.
        label_values: class index -> label value written in predicted files.
        to_index: every label value of the class map -> class index.
    """

    name: str
    class_names: tuple[str, ...]
    label_values: tuple[int, ...]
    to_index: Mapping[int, int]

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.class_names)

    @property
    def structures(self) -> tuple[str, ...]:
        """The foreground class names (metric names use these)."""
        return self.class_names[1:]

    def index_volume(self, labels: np.ndarray) -> np.ndarray:
        """Class indices (``int64``) of a label volume written in file label values.

        Values outside the class map (which manifest validation rejects) become 0.
        """
        return index_volume(labels, self.to_index)


def index_volume(labels: np.ndarray, to_index: Mapping[int, int]) -> np.ndarray:
    """Class indices (``int64``) of ``labels`` under ``to_index``; unmapped values are 0."""
    labels = np.asarray(labels).astype(np.int64)
    lookup = np.zeros(max(int(labels.max(initial=0)), *to_index) + 1, dtype=np.int64)
    for value, index in to_index.items():
        lookup[value] = index
    return lookup[labels]


def parse_task(task: str, class_map: Mapping[int, str]) -> Task:
    """Build the ``Task`` named ``task`` over ``class_map``.

    Raises:
        ValueError: for a malformed class map, an unknown task or structure.
    """
    check_class_map(class_map)
    values = sorted(class_map)
    if task == "multiclass":
        return Task(
            name=task,
            class_names=(BACKGROUND, *(class_map[v] for v in values)),
            label_values=(0, *(int(v) for v in values)),
            to_index={0: 0, **{int(v): i + 1 for i, v in enumerate(values)}},
        )
    if task.startswith("binary:"):
        structure = task.removeprefix("binary:")
        by_name = {name: value for value, name in class_map.items()}
        if structure not in by_name:
            raise ValueError(
                f"task {task!r} names unknown structure {structure!r}; "
                f"the class map has {sorted(by_name)}"
            )
        value = by_name[structure]
        return Task(
            name=task,
            class_names=(BACKGROUND, structure),
            label_values=(0, int(value)),
            to_index={0: 0, **{int(v): int(v == value) for v in values}},
        )
    raise ValueError(f"unknown task {task!r}; use 'multiclass' or 'binary:<structure>'")


def check_class_map(class_map: Mapping[int, str]) -> None:
    """Raise a ValueError for an empty map, a bad label value or a bad structure name."""
    if not class_map:
        raise ValueError("class_map is empty; name at least one structure, e.g. {1: liver}")
    for value, name in class_map.items():
        if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
            raise ValueError(f"class_map label values must be positive integers, got {value!r}")
        if not isinstance(name, str) or name in RESERVED_NAMES or not name.isidentifier():
            raise ValueError(
                f"class_map name {name!r} for label {value} must be a non-empty identifier "
                f"other than {list(RESERVED_NAMES)} (it becomes a metric name)"
            )
    if len(set(class_map.values())) != len(class_map):
        raise ValueError(f"class_map names must be unique, got {dict(class_map)}")
