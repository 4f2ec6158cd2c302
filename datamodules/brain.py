"""``BrainDataModule``: one TorchIO data pipeline for every research thread.

Manifest CSV -> validated subject records -> ``tio.SubjectsDataset`` per split.
Training draws patches through ``tio.Queue`` (label-aware or uniform sampler);
validation, test and prediction yield whole volumes, which the LightningModule
segments patch by patch with ``datamodules.inference.predict_volume``.

With ``weak_labels``, training subjects carry a simulated weak label and its
mask (``datamodules.weak_labels``) in place of their label; validation and test
always keep the clean truth.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import torch
import torchio as tio
from scipy import ndimage
from torch.utils.data import DataLoader

from datamodules.distance import distance_maps_for
from datamodules.manifest import (
    ManifestError,
    SubjectRecord,
    manifest_fingerprint,
    read_manifest,
    validate_manifest,
)
from datamodules.phantom import CHANNELS as PHANTOM_CHANNELS
from datamodules.phantom import CLASS_NAMES as PHANTOM_CLASSES
from datamodules.tasks import Task, parse_task
from datamodules.transforms import Augmentation, subject_transform
from datamodules.weak_labels import WeakLabelMode, label_dice, parse_mode, simulate_weak_label

# The defaults are the embedded phantom's, so a bare BrainDataModule reads it.
DEFAULT_CLASS_MAP = dict(PHANTOM_CLASSES)
SPLITS = ("train", "val", "test")


class BrainDataModule(pl.LightningDataModule):
    """Head-MRI segmentation data from a manifest CSV of NIfTI files.

    Args:
        manifest: CSV with ``subject``, one column per channel, ``label`` and
            optionally ``split`` (paths relative to the CSV).
        channels: manifest columns fed to the network, in this order.
        class_map: label value in the files -> structure name (0 is background).
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
            of reading the NIfTI files every epoch (memory: all volumes of a split).
        weak_labels: weak-label modes (``datamodules.weak_labels.parse_mode`` specs,
            e.g. ``["sparse:4"]`` or ``["noisy:severe"]``) applied in order to each
            training label; batches then carry ``mask`` (1 = labelled) and patches are
            centred only where they hold labelled voxels. The weak labels of all
            training subjects are kept in memory. ``None`` trains on the full labels.
        weak_label_seed: seed of the weak labels (>= 0); each subject's draw depends
            on it and on the subject's name only, not on the split or the order.

    Example:
        >>> data = BrainDataModule("data/phantom/manifest.csv", task="binary:vessels")
        >>> data.num_classes, data.class_names
        (2, ('background', 'vessels'))
    """

    def __init__(
        self,
        manifest: str = "data/phantom/manifest.csv",
        channels: Sequence[str] = PHANTOM_CHANNELS,
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
        self.channels = tuple(channels)
        self.class_map = dict(class_map or DEFAULT_CLASS_MAP)
        self.task: Task = parse_task(task, self.class_map)
        self.spatial_dims = spatial_dims
        self.patch_size = self._check_patch_size(patch_size, spatial_dims)
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
        self.records: dict[str, list[SubjectRecord]] = {}
        self.fingerprint: str | None = None
        self._labelled = False
        self._class_frequencies: tuple[float, ...] | None = None
        self._weak: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._weak_label_quality: dict[str, float] = {}

    # ------------------------------------------------------------------ linked
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

    # ------------------------------------------------------------- data setup
    def load(self, stage: str | None = None) -> None:
        """Read and validate the manifest once, before any training starts.

        Labels are required except for prediction.

        Raises:
            ManifestError: naming subject, file and problem.
        """
        needs_label = stage != "predict"
        if self.records and (self._labelled or not needs_label):
            return
        records = read_manifest(self.manifest, self.channels, require_label=needs_label)
        validate_manifest(records, {0, *self.class_map}, csv_path=self.manifest)
        self._check_patch_fits(records)
        self.fingerprint = manifest_fingerprint(self.manifest, records)
        self._labelled = needs_label
        self.records = {"predict": records}
        if needs_label:
            self.records.update(self._split(records))
            self._class_frequencies = None
            self._weak.clear()
            # Drawn now for training, so that a mode that cannot apply stops the
            # run before it starts; other stages draw them only if asked.
            if self.weak_labels and stage in ("fit", None):
                self._simulate_weak_labels()

    def setup(self, stage: str) -> None:
        """Build the subject datasets of ``stage`` (Lightning hook)."""
        self.load(stage)

    def _split(self, records: list[SubjectRecord]) -> dict[str, list[SubjectRecord]]:
        """Use the manifest's ``split`` column, or a seeded split by fraction.

        Raises:
            ManifestError: when a split would be empty.
        """
        if any(record.split is not None for record in records):
            splits = {name: [r for r in records if r.split == name] for name in SPLITS}
            empty = [name for name in SPLITS if not splits[name]]
            if empty:
                raise ManifestError(
                    f"Manifest '{self.manifest}': the split column has no {empty} subjects; "
                    f"every one of {list(SPLITS)} needs at least one"
                )
            return splits
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(records), generator=generator).tolist()
        n_test = max(1, round(len(records) * self.test_fraction))
        n_val = max(1, round(len(records) * self.val_fraction))
        if len(records) - n_test - n_val < 1:
            raise ManifestError(
                f"Manifest '{self.manifest}' has {len(records)} subjects: too few for "
                f"{n_val} validation and {n_test} test subjects and at least one for training"
            )
        shuffled = [records[i] for i in order]
        return {
            "test": shuffled[:n_test],
            "val": shuffled[n_test : n_test + n_val],
            "train": shuffled[n_test + n_val :],
        }

    @property
    def weak_label_quality(self) -> dict[str, float]:
        """How weak the training labels are; empty without ``weak_labels``.

        The mean over training subjects of each structure's Dice of the weak label
        against the truth on labelled voxels (``dice_<structure>``, ``dice_mean``)
        and of the labelled fraction (``labelled_fraction``), so that every run
        records how weak its supervision was.
        """
        self._ensure_weak_labels()
        return self._weak_label_quality

    def _ensure_weak_labels(self) -> None:
        if self.weak_labels and not self._weak and self.records.get("train"):
            self._simulate_weak_labels()

    def _simulate_weak_labels(self) -> None:
        """Draw each training subject's weak label once and measure it against the truth.

        Raises:
            ManifestError: naming the subject and file a mode cannot apply to, or
                whose weak label leaves no place to centre a training patch.
        """
        self._weak.clear()
        scores = []
        names = dict(enumerate(self.task.class_names))
        for record in self.records["train"]:
            truth = read_label(record)
            # Seeded by name, so a subject's weak label is the same in every split.
            seed = (self.weak_label_seed << 32) + zlib.crc32(record.subject.encode())
            try:
                weak, mask = simulate_weak_label(truth, self.weak_labels, seed=seed)
            except ValueError as error:
                raise ManifestError(
                    f"Manifest '{self.manifest}': subject '{record.subject}', file "
                    f"'{record.label}': weak labels {self.weak_labels} do not apply: {error}"
                ) from error
            if not self._sampling_map(weak, mask)[self._centre_region(mask.shape)].any():
                raise ManifestError(
                    f"Manifest '{self.manifest}': subject '{record.subject}', file "
                    f"'{record.label}': weak labels {self.weak_labels} leave "
                    f"{int(mask.sum())} labelled voxels, too few for any training patch of "
                    f"size {list(self.patch_size)} (with the sampler's class probabilities) "
                    "to hold one; label more slices or use a smaller patch"
                )
            self._weak[record.subject] = (weak, mask)
            scores.append(
                label_dice(
                    self.task.index_volume(weak),
                    self.task.index_volume(truth),
                    mask=mask,
                    num_classes=self.num_classes,
                    class_names=names,
                )
            )
        self._weak_label_quality = {
            key: float(np.nanmean([score[key] for score in scores])) for key in scores[0]
        }

    def subjects_dataset(self, split: str, *, augment: bool = False) -> tio.SubjectsDataset:
        """The ``tio.SubjectsDataset`` of a split, with preprocessing (and augmentation)."""
        records = self.records.get(split, [])
        if not records:
            raise ValueError(f"manifest {self.manifest} has no {split!r} subjects")
        has_label = all(record.label is not None for record in records)
        transform = subject_transform(
            self.task.to_index,
            channels=self.channels,
            preset=self.augmentation if augment else "none",
            spatial_dims=self.spatial_dims,
            has_label=has_label,
        )
        subjects = [to_subject(r) for r in records]
        if split == "train" and self.weak_labels:
            self._ensure_weak_labels()
            for subject in subjects:
                self._attach_weak_label(subject)
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

    def _attach_weak_label(self, subject: tio.Subject) -> None:
        """Swap the subject's label for its weak label; add its ``mask`` and ``sampling`` maps."""
        weak, mask = self._weak[subject["subject"]]
        affine = subject["label"].affine
        subject.remove_image("label")
        subject.add_image(tio.LabelMap(tensor=weak[np.newaxis], affine=affine), "label")
        subject.add_image(tio.LabelMap(tensor=mask[np.newaxis], affine=affine), "mask")
        sampling = self._sampling_map(weak, mask)
        subject.add_image(tio.LabelMap(tensor=sampling[np.newaxis], affine=affine), "sampling")

    def _sampling_map(self, weak: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Where training patches may be centred under weak labels (0: nowhere).

        A centre is allowed where the patch around it holds a labelled voxel, so
        no patch is all unlabelled. For the label sampler the map holds the class
        index + 1 of a labelled centre (an unlabelled allowed centre counts as
        background) and only classes with a sampling probability count; for the
        uniform sampler it is 1 wherever a centre is allowed.
        """
        reachable = ndimage.maximum_filter(mask, size=self._patch_shape(), mode="constant") > 0
        if self.sampler == "uniform":
            return reachable.astype(np.uint8)
        classes = np.where(mask > 0, self.task.index_volume(weak) + 1, 1)
        wanted = [index + 1 for index, p in self._label_probabilities().items() if p > 0]
        return np.where(reachable & np.isin(classes, wanted), classes, 0).astype(np.uint8)

    def _patch_shape(self) -> tuple[int, ...]:
        """The training patch in the volume's three axes (2D: one voxel thick)."""
        return (*self.patch_size, 1) if self.spatial_dims == 2 else self.patch_size

    def _centre_region(self, shape: Sequence[int]) -> tuple[slice, ...]:
        """The voxels where a patch centre keeps the patch inside the volume (as TorchIO)."""
        return tuple(
            slice(p // 2, s - (p - 1) // 2) for p, s in zip(self._patch_shape(), shape, strict=True)
        )

    @property
    def class_frequencies(self) -> tuple[float, ...]:
        """Share of training voxels in each class (background first), read once.

        With weak labels, the share among labelled voxels of the weak labels: a
        weakly supervised run never sees the truth of its training subjects.
        """
        if self._class_frequencies is None:
            counts = torch.zeros(self.num_classes, dtype=torch.float64)
            self._ensure_weak_labels()
            for record in self.records.get("train", []):
                if record.subject in self._weak:
                    weak, mask = self._weak[record.subject]
                    indices = self.task.index_volume(weak)[mask > 0]
                else:
                    indices = self.task.index_volume(read_label(record))
                counts += torch.bincount(
                    torch.from_numpy(indices.ravel()), minlength=self.num_classes
                ).double()
            if counts.sum() == 0:
                raise ValueError(
                    "class_frequencies needs training subjects; call load('fit') first"
                )
            self._class_frequencies = tuple((counts / counts.sum()).tolist())
        return self._class_frequencies

    # ------------------------------------------------------------ dataloaders
    def train_dataloader(self) -> DataLoader:
        """Patches from a ``tio.Queue``; the queue's own workers load subjects."""
        queue = tio.Queue(
            self.subjects_dataset("train", augment=True),
            max_length=self.queue_length,
            samples_per_volume=self.samples_per_volume,
            sampler=self._patch_sampler(),
            num_workers=self.num_workers,
        )
        # TorchIO requires the queue's DataLoader to use the main process.
        return DataLoader(
            queue, batch_size=self.batch_size, num_workers=0, collate_fn=self.collate_patches
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
            collate_fn=self.collate_volume,
        )

    def _patch_sampler(self) -> tio.sampler.PatchSampler:
        patch = self._patch_shape()
        if self.weak_labels:
            # An all-unlabelled patch would carry no loss: see _sampling_map.
            if self.sampler == "uniform":
                return tio.WeightedSampler(patch, "sampling")
            shifted = {index + 1: p for index, p in self._label_probabilities().items()}
            return tio.LabelSampler(patch, "sampling", shifted)
        if self.sampler == "uniform":
            return tio.UniformSampler(patch)
        return tio.LabelSampler(patch, "label", self._label_probabilities())

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

    # -------------------------------------------------------------- batching
    def collate_patches(self, patches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Stack TorchIO patches into ``image (B, C, *spatial)``, ``label (B, *spatial)``.

        With distance maps, also ``distance (B, K, *spatial)``; with weak labels,
        ``mask (B, *spatial)`` (1 = labelled).
        """
        batch = {
            "image": torch.stack([self._image(patch) for patch in patches]),
            "label": torch.stack([patch["label"][tio.DATA][0] for patch in patches]).long(),
        }
        if "distance" in patches[0]:
            batch["distance"] = torch.stack([patch["distance"][tio.DATA] for patch in patches])
        if "mask" in patches[0]:
            batch["mask"] = torch.stack([patch["mask"][tio.DATA][0] for patch in patches]).float()
        if self.spatial_dims == 2:
            batch = {key: value.squeeze(-1) for key, value in batch.items()}
        return batch

    def collate_volume(self, subjects: list[tio.Subject]) -> dict[str, Any]:
        """One whole volume: ``image (1, C, H, W, D)``, ``label (1, H, W, D)`` and metadata."""
        (subject,) = subjects
        reference = subject[self.channels[0]]
        batch: dict[str, Any] = {
            "image": self._image(subject).unsqueeze(0),
            "subject": subject["subject"],
            "affine": torch.as_tensor(reference.affine),
            "spacing": tuple(float(s) for s in reference.spacing),
        }
        if "label" in subject:
            batch["label"] = subject["label"][tio.DATA][0].long().unsqueeze(0)
        if "distance" in subject:
            batch["distance"] = subject["distance"][tio.DATA].unsqueeze(0)
        return batch

    def _image(self, subject: dict[str, Any]) -> torch.Tensor:
        return torch.cat([subject[channel][tio.DATA] for channel in self.channels]).float()

    # ------------------------------------------------------------- checking
    @staticmethod
    def _check_patch_size(patch_size: Sequence[int], spatial_dims: int) -> tuple[int, ...]:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        patch = tuple(int(p) for p in patch_size)
        if len(patch) != spatial_dims or min(patch) < 1:
            raise ValueError(
                f"patch_size must be {spatial_dims} positive sizes for spatial_dims="
                f"{spatial_dims}, got {list(patch_size)}"
            )
        return patch

    def _check_patch_fits(self, records: Sequence[SubjectRecord]) -> None:
        """Every training patch must fit inside every volume (header read only)."""
        for record in records:
            path = next(iter(record.channels.values()))
            shape = nib.load(path).shape[: self.spatial_dims]
            if any(p > s for p, s in zip(self.patch_size, shape, strict=True)):
                raise ManifestError(
                    f"Manifest '{self.manifest}': subject '{record.subject}', file '{path}': "
                    f"volume shape {tuple(shape)} is smaller than patch_size "
                    f"{list(self.patch_size)}; lower data.patch_size (or use a smaller profile)"
                )

    def _check_options(self) -> None:
        if self.sampler not in ("label", "uniform"):
            raise ValueError(f"sampler must be 'label' or 'uniform', got {self.sampler!r}")
        if not self.channels:
            raise ValueError("channels is empty: name at least one manifest column")
        for name in ("samples_per_volume", "queue_length", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.label_probabilities is not None:
            self._label_probabilities()
        for spec in self.weak_labels:
            self._check_vessel_label(parse_mode(spec))  # a bad spec raises a ValueError
        seed = self.weak_label_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"weak_label_seed must be an integer >= 0, got {seed!r}")
        if self.weak_labels and self.distance_maps:
            raise ValueError(
                "distance_maps and weak_labels cannot be combined: the distance maps would be "
                "computed from the clean truth, which weakly supervised training must not see"
            )

    def _check_vessel_label(self, mode: WeakLabelMode) -> None:
        """The ``noisy`` mode drops thin segments of its ``vessel_label``: it must be vessels."""
        vessel_label = getattr(mode, "vessel_label", None)
        if vessel_label is not None and self.class_map.get(vessel_label) != "vessels":
            raise ValueError(
                f"weak-label mode {mode.name!r} drops thin segments of label {vessel_label}, "
                f"which class_map names {self.class_map.get(vessel_label)!r}, not 'vessels'; "
                "give the thin structure's label as vessel_label=<value> in the spec, or "
                "vessel_label=none"
            )


def read_label(record: SubjectRecord) -> np.ndarray:
    """The label volume of a record, ``(x, y, z)`` in file label values."""
    labels = np.asarray(nib.load(record.label).dataobj)
    return labels.reshape(labels.shape[:3])


def to_subject(record: SubjectRecord) -> tio.Subject:
    """A ``tio.Subject`` with one ``ScalarImage`` per channel and a ``label`` map."""
    images: dict[str, Any] = {name: tio.ScalarImage(path) for name, path in record.channels.items()}
    if record.label is not None:
        images["label"] = tio.LabelMap(record.label)
    return tio.Subject(subject=record.subject, **images)
