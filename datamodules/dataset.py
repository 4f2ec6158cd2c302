"""The dataset description: what a manifest's data holds, declared beside it.

Like nnU-Net's ``dataset.json``, a small YAML file travels with the data and
names its input channels, its class map and its thin structures (those that
weak-label noise drops rather than erodes, e.g. vessels). Every thread reads
channels, class names and thin structures from here, never from constants of one
dataset. By default it is ``dataset.yaml`` in the manifest's folder::

    name: my-cohort
    channels: [t1]
    class_map: {1: white_matter, 2: ventricles, 3: arteries}
    thin_structures: [arteries]
    translation: {source: [t2], target: mra}   # optional: the pseudo-image thread's pair

Example:
    >>> description = DatasetDescription(("t1",), {1: "gland", 2: "duct"}, ("duct",))
    >>> description.structures, description.thin_labels
    (('gland', 'duct'), (2,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from datamodules.manifest_records import ManifestError
from datamodules.tasks import check_class_map

DESCRIPTION_NAME = "dataset.yaml"
_KEYS = ("name", "channels", "class_map", "thin_structures", "translation")
# A translated channel's name: the generated image of `target` is `pseudo_<target>`.
PSEUDO_PREFIX = "pseudo_"
# Manifest columns and the keys the data module adds to every subject and batch.
RESERVED_CHANNELS = ("subject", "label", "split", "mask", "sampling", "distance", "image")


class DatasetDescriptionError(ManifestError):
    """A dataset description is missing or malformed; the message names the file.

    A kind of ``ManifestError``: the description is part of the data, and bad data
    is reported the same way wherever it is found.
    """


@dataclass(frozen=True)
class Translation:
    """Which channels an image-to-image network translates into which (pseudo-image thread).

    Attributes:
        source: the input channels of the generator.
        target: the channel it learns to generate.

    >>> Translation(("cisternography",), "angiography").pseudo
    'pseudo_angiography'
    """

    source: tuple[str, ...]
    target: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", tuple(self.source))
        if not self.source or not self.target:
            raise ValueError("translation needs source channels and a target channel")
        if self.target in self.source:
            raise ValueError(f"translation target {self.target!r} is also a source channel")

    @property
    def pseudo(self) -> str:
        """The channel name of the generated target."""
        return PSEUDO_PREFIX + self.target

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this translation."""
        return {"source": list(self.source), "target": self.target}


@dataclass(frozen=True)
class DatasetDescription:
    """Channels, class map and thin structures of one dataset.

    Attributes:
        channels: manifest columns that hold the input images, in network order.
        class_map: label value in the label files -> structure name (0 is background).
        thin_structures: structure names too thin to erode (weak-label noise drops
            their thin segments instead).
        name: a free-text name of the dataset.
        translation: the channel pair of the pseudo-image thread, if the data has one.
    """

    channels: tuple[str, ...]
    class_map: Mapping[int, str]
    thin_structures: tuple[str, ...] = ()
    name: str = ""
    translation: Translation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "class_map", {int(k): v for k, v in self.class_map.items()})
        object.__setattr__(self, "thin_structures", tuple(self.thin_structures))
        if not self.channels or not all(isinstance(c, str) and c for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of names, got {self.channels}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must not repeat a name, got {list(self.channels)}")
        reserved = [c for c in self.channels if c in RESERVED_CHANNELS]
        if reserved:
            raise ValueError(f"channels {reserved} are reserved names {list(RESERVED_CHANNELS)}")
        check_class_map(self.class_map)
        unknown = [name for name in self.thin_structures if name not in self.class_map.values()]
        if unknown:
            raise ValueError(
                f"thin_structures {unknown} are not structures of the class map "
                f"{sorted(self.class_map.values())}"
            )
        if self.translation is not None:
            pair = (*self.translation.source, self.translation.target)
            absent = [name for name in pair if name not in self.channels]
            if absent:
                raise ValueError(
                    f"translation channels {absent} are not channels {list(self.channels)}"
                )

    def with_channel(self, name: str) -> DatasetDescription:
        """This description with one more channel (a stage's generated image)."""
        if name in self.channels:
            return self
        return DatasetDescription(
            (*self.channels, name),
            self.class_map,
            self.thin_structures,
            self.name,
            self.translation,
        )

    @property
    def structures(self) -> tuple[str, ...]:
        """Structure names in label-value order."""
        return tuple(self.class_map[value] for value in sorted(self.class_map))

    @property
    def thin_labels(self) -> tuple[int, ...]:
        """Label values of the thin structures."""
        by_name = {name: value for value, name in self.class_map.items()}
        return tuple(by_name[name] for name in self.thin_structures)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this description."""
        content = {
            "name": self.name,
            "channels": list(self.channels),
            "class_map": dict(self.class_map),
            "thin_structures": list(self.thin_structures),
        }
        if self.translation is not None:
            content["translation"] = self.translation.to_dict()
        return content


def description_path(manifest: str | Path, dataset: str | Path | None = None) -> Path:
    """The description of a manifest: ``dataset`` if given, else ``dataset.yaml`` beside it."""
    return Path(dataset) if dataset is not None else Path(manifest).parent / DESCRIPTION_NAME


def load_description(manifest: str | Path, dataset: str | Path | None = None) -> DatasetDescription:
    """Read and check the description of ``manifest``.

    Raises:
        DatasetDescriptionError: naming the file: missing, not YAML, or malformed.
    """
    path = description_path(manifest, dataset)
    if dataset is None and not Path(manifest).is_file():
        raise DatasetDescriptionError(
            f"Manifest '{manifest}': file does not exist (its dataset description "
            f"{path} is read from beside it)"
        )
    if not path.is_file():
        raise DatasetDescriptionError(
            f"dataset description {path} does not exist: write one beside the manifest "
            f"(channels, class_map, thin_structures; see docs/experiments.md) or name it "
            "(versaseg fit --data.dataset FILE, versaseg ablate --dataset FILE)"
        )
    try:
        content = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as error:
        raise DatasetDescriptionError(
            f"dataset description {path}: not a text YAML file ({error.reason})"
        ) from error
    except (OSError, yaml.YAMLError) as error:
        raise DatasetDescriptionError(
            f"dataset description {path}: unreadable ({error})"
        ) from error
    if not isinstance(content, dict):
        raise DatasetDescriptionError(f"dataset description {path}: expected a mapping")
    unknown = sorted(set(content) - set(_KEYS))
    missing = [key for key in ("channels", "class_map") if key not in content]
    if unknown or missing:
        raise DatasetDescriptionError(
            f"dataset description {path}: "
            + "; ".join(
                [f"unknown keys {unknown} (known: {list(_KEYS)})"] * bool(unknown)
                + [f"missing keys {missing}"] * bool(missing)
            )
        )
    class_map = content["class_map"]
    if not isinstance(class_map, dict):
        raise DatasetDescriptionError(f"dataset description {path}: class_map must be a mapping")
    try:
        return DatasetDescription(
            channels=_names(content["channels"]),
            class_map=class_map,
            thin_structures=_names(content.get("thin_structures") or []),
            name=str(content.get("name") or ""),
            translation=_translation(content.get("translation")),
        )
    except (TypeError, ValueError) as error:
        raise DatasetDescriptionError(f"dataset description {path}: {error}") from error


def write_description(folder: str | Path, description: DatasetDescription) -> Path:
    """Write ``description`` as ``dataset.yaml`` in ``folder``; returns its path."""
    path = Path(folder) / DESCRIPTION_NAME
    path.write_text(yaml.safe_dump(description.to_dict(), sort_keys=False))
    return path


def _translation(value: Any) -> Translation | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"source", "target"}:
        raise ValueError(
            f"translation must be {{source: [channels], target: channel}}, got {value!r}"
        )
    source = value["source"]
    return Translation(
        _names([source] if isinstance(source, str) else source), str(value["target"])
    )


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(str(item) for item in value)
