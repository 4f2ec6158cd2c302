"""Grid entries written once for any dataset: placeholders the data's description fills in.

An ablation file must not name one dataset's structures or channels, so it writes:

- ``{structure}`` in an entry's name: one entry per structure of the class map;
- ``{thin_structure}`` in an entry's name: one entry per thin structure (vessels, ducts);
- ``{source}``, ``{target}``, ``{pseudo}`` in values: the channels of the description's
  translation pair and the generated channel's name (``pseudo_<target>``). A list item
  that is exactly ``"{source}"`` becomes all the source channels.

>>> entries = {"multiclass": {"data.task": "multiclass"},
...            "{thin_structure}": {"data.task": "binary:{thin_structure}"}}
>>> dataset_entries(entries, {THIN_STRUCTURE: ("duct",)})
{'multiclass': {'data.task': 'multiclass'}, 'duct': {'data.task': 'binary:duct'}}
>>> channel_substituted({"data.channels": ["{source}", "{pseudo}"]},
...                     {"{source}": ["t2"], "{target}": ["mra"], "{pseudo}": ["pseudo_mra"]})
{'data.channels': ['t2', 'pseudo_mra']}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datamodules.dataset import DatasetDescription

STRUCTURE = "{structure}"
THIN_STRUCTURE = "{thin_structure}"
ENTRY_PLACEHOLDERS = (STRUCTURE, THIN_STRUCTURE)
CHANNEL_PLACEHOLDERS = ("{source}", "{target}", "{pseudo}")


class PlaceholderError(ValueError):
    """A placeholder the dataset cannot fill; the message names it and what is missing."""


def entry_values(description: DatasetDescription | None) -> dict[str, tuple[str, ...]]:
    """What each entry-name placeholder expands over, from a description (none without)."""
    if description is None:
        return {}
    return {STRUCTURE: description.structures, THIN_STRUCTURE: description.thin_structures}


def channel_values(description: DatasetDescription | None) -> dict[str, list[str]]:
    """The channels each value placeholder stands for; empty without a translation pair."""
    translation = description.translation if description is not None else None
    if translation is None:
        return {}
    return {
        "{source}": list(translation.source),
        "{target}": [translation.target],
        "{pseudo}": [translation.pseudo],
    }


def dataset_entries(
    entries: Mapping[str, dict[str, Any]], values: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """An axis's entries with every ``{structure}``/``{thin_structure}`` entry expanded."""
    expanded: dict[str, dict[str, Any]] = {}
    for name, overrides in entries.items():
        placeholder = next((p for p in ENTRY_PLACEHOLDERS if p in name), None)
        if placeholder is None:
            expanded[name] = overrides
            continue
        for value in values.get(placeholder, ()):
            expanded_name = name.replace(placeholder, value)
            if expanded_name in entries:
                raise PlaceholderError(
                    f"grid entry {name!r} for {placeholder[1:-1]} {value!r} is named "
                    f"{expanded_name!r}, like an entry the axis already has"
                )
            expanded[expanded_name] = _replaced(overrides, placeholder, value)
    return expanded


def _replaced(value: Any, placeholder: str, text: str) -> Any:
    if isinstance(value, str):
        return value.replace(placeholder, text)
    if isinstance(value, dict):
        return {key: _replaced(item, placeholder, text) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, placeholder, text) for item in value]
    return value


def uses_channels(value: Any) -> list[str]:
    """The channel placeholders that occur in ``value`` (nested), in first-seen order."""
    if isinstance(value, str):
        return [p for p in CHANNEL_PLACEHOLDERS if p in value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    found: list[str] = []
    for item in items:
        found += [p for p in uses_channels(item) if p not in found]
    return found


def channel_substituted(value: Any, channels: Mapping[str, Sequence[str]]) -> Any:
    """``value`` with the channel placeholders filled in (see the module docstring).

    Raises:
        PlaceholderError: a placeholder without channels (no translation pair), or one
            standing for several channels inside a longer string.
    """
    missing = [p for p in uses_channels(value) if p not in channels]
    if missing:
        raise PlaceholderError(
            f"{missing} stand for the translation pair of the dataset description, which "
            "has none: add `translation: {source: [...], target: ...}` to its dataset.yaml"
        )
    if isinstance(value, dict):
        return {key: channel_substituted(item, channels) for key, item in value.items()}
    if isinstance(value, list):
        result: list[Any] = []
        for item in value:
            spliced = channels.get(item) if isinstance(item, str) else None
            result += list(spliced) if spliced else [channel_substituted(item, channels)]
        return result
    if isinstance(value, str):
        for placeholder in uses_channels(value):
            names = channels[placeholder]
            if len(names) != 1:
                raise PlaceholderError(
                    f"{value!r}: {placeholder} stands for {len(names)} channels {list(names)}; "
                    "use it as a list item of its own"
                )
            value = value.replace(placeholder, names[0])
    return value
