"""``BrainDataModule``: one TorchIO data pipeline for every research thread.

Manifest CSV + dataset description -> validated subject records ->
``tio.SubjectsDataset`` per split. Training draws patches through ``tio.Queue``;
validation, test and prediction yield whole volumes. With ``weak_labels``,
training subjects carry a simulated weak label and its mask
(``datamodules.weak_supervision``); validation and test keep the clean truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torchio as tio
from torch.utils.data import DataLoader

from datamodules import patch_samplers
from datamodules.dataset import DatasetDescription, load_description
from datamodules.distance import distance_maps_for
from datamodules.distributed import QueueSampler, subject_sampler
from datamodules.labels import read_label
from datamodules.manifest import (
    SubjectRecord,
    check_channel_names,
    manifest_fingerprint,
    read_manifest,
    validate_manifest,
)
from datamodules.splits import split_records
from datamodules.subjects import Collate, attach_weak_label, to_subject
from datamodules.tasks import Task, parse_task
from datamodules.transforms import Augmentation, subject_transform
from datamodules.weak_supervision import WeakSupervision


class BrainDataModule(pl.LightningDataModule):
    """Head-MRI segmentation data from a manifest CSV of NIfTI files.

    Args:
        manifest: CSV with ``subject``, one column per channel, ``label`` and
            optionally ``split`` (paths relative to the CSV).
        dataset: the dataset description (``datamodules.dataset``); None reads
            ``dataset.yaml`` beside the manifest. It names the channels, the class
            map and the thin structures.
        channels: manifest columns fed to the network, in this order; None takes
            the description's (a subset, e.g. one contrast, is allowed).
        class_map: label value in the files -> structure name (0 is background);
            None takes the description's.
        task: ``multiclass`` or ``binary:<structure>``.
        spatial_dims: 2 trains on slices (patches one voxel thick along the
            last axis, squeezed to 2D), 3 on volumes.
        patch_size: training patch size; two values in 2D, three in 3D.
        sampler: ``label`` draws patch centres by class with
            ``label_probabilities``; ``uniform`` draws them anywhere.
        label_probabilities: structure name (or ``background``) -> relative
            probability of a patch centred on it; ``None`` weighs classes equally.
        samples_per_volume: patches drawn from each training volume per epoch.
        queue_length: patches held in the queue.
        batch_size: training patches per batch.
        num_workers: worker processes that load and augment subjects.
        augmentation: ``none``, ``light`` or ``mri``.
        val_fraction: share of subjects for validation when the manifest has no
            ``split`` column.
        test_fraction: share of subjects for test, likewise.
        split_seed: seed of that split.
        distance_maps: attach per-class signed distance maps of the label
            (``datamodules.distance``) as ``distance`` to every subject and batch,
            for the distance-weighted losses; computed once per subject.
        cache_subjects: keep the decoded volumes of each split in memory instead
            of reading the NIfTI files every epoch, and for the process's later fits
            (``datamodules.shared_volumes``: an ablation's worker reads each file once;
            memory: every volume the process has read).
        weak_labels: weak-label modes (``datamodules.weak_labels.parse_mode`` specs,
            e.g. ``["sparse:4"]`` or ``["noisy:severe"]``) applied in order to each
            training label; batches then carry ``mask`` (1 = labelled) and patches are
            centred only where they hold labelled voxels. The weak labels of all
            training subjects are kept in memory. ``None`` trains on the full labels.
        weak_label_seed: seed of the weak labels (>= 0); each subject's draw depends
            on it and on the subject's name only, not on the split or the order.

    Example:
        >>> from datamodules.dataset import write_description
        >>> folder = getfixture("tmp_path")
        >>> _ = write_description(folder, DatasetDescription(("t1",), {1: "gland", 2: "duct"}))
        >>> _ = (folder / "manifest.csv").write_text("subject,t1,label")
        >>> data = BrainDataModule(str(folder / "manifest.csv"), task="binary:duct")
        >>> data.num_classes, data.class_names, data.channels
        (2, ('background', 'duct'), ('t1',))
    """

    def __init__(
        self,
        manifest: str = "data/phantom/manifest.csv",
        dataset: str | None = None,
        channels: Sequence[str] | None = None,
        class_map: dict[int, str] | None = None,
        task: str = "multiclass",
        *,
        spatial_dims: Literal[2, 3] = 2,
        patch_size: Sequence[int] = (64, 64),
        sampler: Literal["label", "uniform"] = "label",
        label_probabilities: dict[str, float] | None = None,
        samples_per_volume: int = 16,
        queue_length: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        augmentation: Augmentation = "light",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        distance_maps: bool = False,
        cache_subjects: bool = False,
        weak_labels: Sequence[str | dict[str, Any]] | None = None,
        weak_label_seed: int = 0,
    ) -> None:
        super().__init__()
        self.manifest = Path(manifest)
        self.description: DatasetDescription = load_description(manifest, dataset)
        self.channels = tuple(self.description.channels if channels is None else channels)
        self.class_map = dict(self.description.class_map if class_map is None else class_map)
        self.task: Task = parse_task(task, self.class_map)
        self.spatial_dims = spatial_dims
        self.patch_size = patch_samplers.checked_patch_size(patch_size, spatial_dims)
        self.sampler = sampler
        self.label_probabilities = label_probabilities
        self.samples_per_volume = samples_per_volume
        self.queue_length = queue_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augmentation = augmentation
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.distance_maps = distance_maps
        self.cache_subjects = cache_subjects
        self.weak_labels = list(weak_labels or [])
        self.weak_label_seed = weak_label_seed
        self._check_options()
        self.weak: WeakSupervision | None = None
        if self.weak_labels:
            self.weak = WeakSupervision(
                self.weak_labels,
                seed=weak_label_seed,
                thin_labels=self._thin_labels(),
                task=self.task,
                patch_shape=self._patch_shape(),
                sampler=sampler,
                label_probabilities=self._label_probabilities(),
            )
        self.collate = Collate(self.channels, spatial_dims)
        self.records: dict[str, list[SubjectRecord]] = {}
        self.fingerprint: str | None = None
        self._labelled = False
        self._class_frequencies: tuple[float, ...] | None = None

    @property
    def num_classes(self) -> int:
        """Classes the network predicts, background included."""
        return self.task.num_classes

    @property
    def in_channels(self) -> int:
        """Input channels of the network."""
        return len(self.channels)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class index -> name, background first."""
        return self.task.class_names

    def load(self, stage: str | None = None) -> None:
        """Read and validate the manifest once, before any training starts.

        The one load path (the library calls it before a run, ``setup`` again).
        Labels are required except for prediction.

        Raises:
            ManifestError: naming subject, file and problem.
        """
        needs_label = stage != "predict"
        if self.records and (self._labelled or not needs_label):
            return
        records = read_manifest(self.manifest, self.channels, require_label=needs_label)
        validate_manifest(records, {0, *self.class_map}, csv_path=self.manifest)
        patch_samplers.check_patch_fits(records, self.patch_size, self.manifest)
        self.fingerprint = manifest_fingerprint(self.manifest, records)
        self._labelled = needs_label
        self.records = {"predict": records}
        if needs_label:
            self.records.update(
                split_records(
                    records,
                    self.manifest,
                    val_fraction=self.val_fraction,
                    test_fraction=self.test_fraction,
                    seed=self.split_seed,
                )
            )
            self._class_frequencies = None
            # Drawn now, for training only, so that a mode that cannot apply stops
            # the run before it starts.
            if self.weak is not None and stage in ("fit", None):
                self.weak.draw(self.records["train"], self.manifest)

    def setup(self, stage: str) -> None:
        """Build the subject datasets of ``stage`` (Lightning hook)."""
        self.load(stage)

    @property
    def weak_label_quality(self) -> dict[str, float]:
        """How weak the training labels are; empty without ``weak_labels``.

        The mean over training subjects of each structure's Dice of the weak label
        against the truth on labelled voxels (``dice_<structure>``, ``dice_mean``)
        and of the labelled fraction (``labelled_fraction``), so that every run
        records how weak its supervision was.
        """
        return self._drawn_weak_labels().quality if self.weak is not None else {}

    @property
    def weak_label_draws(self) -> dict[str, list[dict[str, Any]]]:
        """Training subject -> its recorded weak-label draws; empty without ``weak_labels``."""
        return self._drawn_weak_labels().records if self.weak is not None else {}

    def _drawn_weak_labels(self) -> WeakSupervision:
        assert self.weak is not None
        if not self.weak.labels:
            self.load("fit")  # draws them, unless another stage loaded the data first
        if not self.weak.labels:
            self.weak.draw(self.records["train"], self.manifest)
        return self.weak

    def subjects_dataset(self, split: str, *, augment: bool = False) -> tio.SubjectsDataset:
        """The ``tio.SubjectsDataset`` of a split, with preprocessing (and augmentation)."""
        records = self.records.get(split, [])
        if not records:
            raise ValueError(f"manifest {self.manifest} has no {split!r} subjects")
        has_label = all(record.label is not None for record in records)
        transform = self.transform(augment=augment, has_label=has_label)
        # Cached subjects share their decoded volumes with the process's later fits.
        subjects = [to_subject(r, shared=self.cache_subjects) for r in records]
        if split == "train" and self.weak is not None:
            weak = self._drawn_weak_labels()
            for subject in subjects:
                attach_weak_label(subject, weak)
        if self.cache_subjects:
            # Decoded once, kept in memory: every epoch then skips the NIfTI reads.
            for subject in subjects:
                subject.load()
        # The test split needs no distance maps: only losses use them.
        if self.distance_maps and has_label and split in ("train", "val"):
            for subject, record in zip(subjects, records, strict=True):
                maps = distance_maps_for(record.label, self.task.to_index, self.num_classes)
                subject.add_image(
                    tio.ScalarImage(tensor=maps, affine=subject["label"].affine), "distance"
                )
        return tio.SubjectsDataset(subjects, transform=transform)

    def transform(self, *, augment: bool = False, has_label: bool = True) -> tio.Compose:
        """The preprocessing every subject gets, with the augmentation preset if ``augment``."""
        return subject_transform(
            self.task.to_index,
            channels=self.channels,
            preset=self.augmentation if augment else "none",
            spatial_dims=self.spatial_dims,
            has_label=has_label,
        )

    def _patch_shape(self) -> tuple[int, ...]:
        """The training patch in the volume's three axes (2D: one voxel thick)."""
        return (*self.patch_size, 1) if self.spatial_dims == 2 else self.patch_size

    @property
    def class_frequencies(self) -> tuple[float, ...]:
        """Share of training voxels in each class (background first), read once.

        With weak labels, the share among labelled voxels of the weak labels: a
        weakly supervised run never sees the truth of its training subjects.
        """
        if self._class_frequencies is None:
            counts = torch.zeros(self.num_classes, dtype=torch.float64)
            weak = self._drawn_weak_labels().labels if self.weak is not None else {}
            for record in self.records.get("train", []):
                if record.subject in weak:
                    drawn = weak[record.subject]
                    indices = self.task.index_volume(drawn.label)[drawn.mask > 0]
                else:
                    indices = self.task.index_volume(read_label(record.label))
                counts += torch.bincount(
                    torch.from_numpy(indices.ravel()), minlength=self.num_classes
                ).double()
            if counts.sum() == 0:
                raise ValueError(
                    "class_frequencies needs training subjects; call load('fit') first"
                )
            self._class_frequencies = tuple((counts / counts.sum()).tolist())
        return self._class_frequencies

    def train_dataloader(self) -> DataLoader:
        """Patches from a ``tio.Queue``; the queue's own workers load subjects."""
        subjects = self.subjects_dataset("train", augment=True)
        shard = subject_sampler(subjects, self.trainer, self.split_seed)  # None: one process
        queue = tio.Queue(
            subjects,
            max_length=self.queue_length,
            samples_per_volume=self.samples_per_volume,
            sampler=self._patch_sampler(),
            subject_sampler=shard,
            num_workers=self.num_workers,
            shuffle_subjects=shard is None,
        )
        # TorchIO requires the queue's DataLoader to use the main process. Pinned
        # batches let Lightning's non-blocking copy to a GPU overlap the next step.
        return DataLoader(
            queue,
            batch_size=self.batch_size,
            num_workers=0,
            collate_fn=self.collate.patches,
            sampler=None if shard is None else QueueSampler(queue, shard),
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._volume_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._volume_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._volume_loader("predict")

    def _volume_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.subjects_dataset(split),
            batch_size=1,
            num_workers=self.num_workers,
            collate_fn=self.collate.volume,
            pin_memory=torch.cuda.is_available(),
        )

    def _patch_sampler(self) -> tio.sampler.PatchSampler:
        patch = self._patch_shape()
        if self.weak is not None:
            # An all-unlabelled patch would carry no loss: see WeakSupervision.sampling_map.
            if self.sampler == "uniform":
                return patch_samplers.WeightedSampler(patch, "sampling")
            shifted = {index + 1: p for index, p in self._label_probabilities().items()}
            return patch_samplers.LabelSampler(patch, "sampling", shifted)
        if self.sampler == "uniform":
            return patch_samplers.UniformSampler(patch)
        return patch_samplers.LabelSampler(patch, "label", self._label_probabilities())

    def _label_probabilities(self) -> dict[int, float]:
        names = self.task.class_names
        if self.label_probabilities is None:
            return {index: 1.0 for index in range(len(names))}
        unknown = set(self.label_probabilities) - set(names)
        if unknown:
            raise ValueError(
                f"label_probabilities names {sorted(unknown)}, not classes of task "
                f"{self.task.name!r}: {list(names)}"
            )
        return {names.index(name): p for name, p in self.label_probabilities.items()}

    def _check_options(self) -> None:
        if self.sampler not in ("label", "uniform"):
            raise ValueError(f"sampler must be 'label' or 'uniform', got {self.sampler!r}")
        check_channel_names(self.channels)
        for name in ("samples_per_volume", "queue_length", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.samples_per_volume > self.queue_length:  # TorchIO's queue could not fill
            raise ValueError(
                f"samples_per_volume ({self.samples_per_volume}) must not exceed "
                f"queue_length ({self.queue_length})"
            )
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.label_probabilities is not None:
            self._label_probabilities()
        if self.weak_labels and self.distance_maps:
            raise ValueError(
                "distance_maps and weak_labels cannot be combined: the distance maps would be "
                "computed from the clean truth, which weakly supervised training must not see"
            )

    def _thin_labels(self) -> tuple[int, ...]:
        """Label values of the description's thin structures that this class map has."""
        by_name = {name: value for value, name in self.class_map.items()}
        return tuple(by_name[n] for n in self.description.thin_structures if n in by_name)
