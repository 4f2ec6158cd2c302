"""Draws as data: JSON-ready records of weak-label draws, and back.

As with TorchIO's ``subject.history``, a run can log each subject's draws (a JSON
artifact) and replay them exactly: ``apply_weak_label(label, draws_from_records(records))``.
A record is the mode's name plus the draw's fields, tuples written as lists.

Example:
    >>> import json
    >>> draws = (SparseDraw(axis=2, slices=(0, 4)),)
    >>> text = json.dumps(draws_to_records(draws))
    >>> text
    '[{"mode": "sparse", "axis": 2, "slices": [0, 4]}]'
    >>> draws_from_records(json.loads(text)) == draws
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datamodules.weak_labels.missing import MissingDraw
from datamodules.weak_labels.noisy import NoisyDraw
from datamodules.weak_labels.simulate import WeakLabelDraw
from datamodules.weak_labels.sparse import SparseDraw

DRAWS: dict[str, type[WeakLabelDraw]] = {
    draw.name: draw for draw in (SparseDraw, NoisyDraw, MissingDraw)
}


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and numpy scalars as Python ones, for JSON."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tuples(value: Any) -> Any:
    """``value`` with lists (as JSON gives them back) as tuples, as the draws hold them."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(item) for item in value)
    return value


def draws_to_records(draws: Sequence[WeakLabelDraw]) -> list[dict[str, Any]]:
    """JSON-serialisable records of ``draws``: ``{"mode": name, **fields}`` per draw, in order.

    Raises:
        ValueError: if an item is not a weak-label draw.
    """
    records = []
    for draw in draws:
        if not isinstance(draw, WeakLabelDraw):
            raise ValueError(f"expected a weak-label draw, got {draw!r}")
        fields = dataclasses.asdict(draw)
        records.append({"mode": draw.name, **{key: _plain(v) for key, v in fields.items()}})
    return records


def draws_from_records(records: Sequence[Mapping[str, Any]]) -> tuple[WeakLabelDraw, ...]:
    """The draws that `draws_to_records` wrote, e.g. after a ``json.dumps``/``json.loads``.

    Raises:
        ValueError: naming the record whose mode is unknown or whose fields do not match.
    """
    draws = []
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValueError(f"weak-label draw record {position} must be a mapping, got {record!r}")
        fields = dict(record)
        name = fields.pop("mode", None)
        if name not in DRAWS:
            raise ValueError(
                f"weak-label draw record {position}: unknown mode {name!r}; "
                f"choose one of {list(DRAWS)}"
            )
        draw = DRAWS[name]
        expected = {field.name for field in dataclasses.fields(draw)}
        if set(fields) != expected:
            raise ValueError(
                f"weak-label draw record {position} ({name}): fields {sorted(fields)}, "
                f"expected {sorted(expected)}"
            )
        draws.append(draw(**{key: _tuples(value) for key, value in fields.items()}))
    return tuple(draws)
