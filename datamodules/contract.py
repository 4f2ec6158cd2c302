"""What every research thread may rely on from the shared data module.

The LightningModules, callbacks, MLflow recorders and the training library read
the data module through this Protocol only, so a thread (or a test double) can
see in one place what it may use. ``BrainDataModule`` implements it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from datamodules.dataset import DatasetDescription
from datamodules.manifest import SubjectRecord
from datamodules.tasks import Task
from datamodules.weak_supervision import WeakSupervision


class SegmentationData(Protocol):
    """The data module's contract.

    Attributes:
        manifest: the manifest CSV.
        description: the dataset description (channels, class map, thin structures).
        channels: the channels fed to the network, in order.
        task: the task (class names, label values, class indices).
        spatial_dims: 2 (slices) or 3 (volumes).
        patch_size: the training patch size.
        distance_maps: whether batches carry signed distance maps.
        fingerprint: a digest of the data's content, set by ``load``.
        records: split name -> its subject records, set by ``load``.
        weak: the training subjects' weak labels (``WeakSupervision``, which a module
            may narrow with ``restrict``), None without ``weak_labels``.
    """

    manifest: Path
    description: DatasetDescription
    channels: tuple[str, ...]
    task: Task
    spatial_dims: int
    patch_size: tuple[int, ...]
    distance_maps: bool
    fingerprint: str | None
    records: dict[str, list[SubjectRecord]]
    weak: WeakSupervision | None

    @property
    def in_channels(self) -> int:
        """Input channels of the network."""

    @property
    def num_classes(self) -> int:
        """Classes the network predicts, background included."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class index -> name, background first."""

    @property
    def class_frequencies(self) -> tuple[float, ...]:
        """Share of training voxels per class (what frequency-weighted losses need)."""

    @property
    def weak_label_quality(self) -> dict[str, float]:
        """``labelled_fraction`` and ``dice_<structure>`` of the training labels; empty if full."""

    @property
    def weak_label_draws(self) -> dict[str, list[dict[str, Any]]]:
        """Training subject -> its recorded weak-label draws; empty if full labels."""

    def load(self, stage: str | None = None) -> None:
        """Read and validate the data of ``stage`` (the one load path), raising on bad data."""

    def val_dataloader(self) -> Any:
        """Whole validation volumes, batch size 1."""
