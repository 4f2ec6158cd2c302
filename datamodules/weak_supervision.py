"""Weak supervision of a data module: each training subject's weak label, drawn once.

``BrainDataModule`` hands its training subjects to ``WeakSupervision``, which
draws each subject's weak label (``datamodules.weak_labels``) once, seeded by the
seed and the subject's name only (so not by the split or the order), keeps the
draws as data (``records``, logged with the run so a result can be replayed
without re-sampling), and computes where training patches may be centred.

Validation and test never see weak labels; they keep the clean truth.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from datamodules.labels import read_label
from datamodules.manifest import ManifestError, SubjectRecord
from datamodules.tasks import Task
from datamodules.weak_labels import (
    WeakLabelMode,
    draw_weak_label,
    draws_to_records,
    label_dice,
    resolve_modes,
)


@dataclass(frozen=True)
class WeakLabel:
    """One subject's weak label, its mask (1 = labelled), patch-centre map and draws."""

    label: np.ndarray
    mask: np.ndarray
    sampling: np.ndarray
    draws: list[dict[str, Any]]


class WeakSupervision:
    """Draw, keep and measure the weak labels of a data module's training subjects.

    Args:
        specs: weak-label mode specs (``datamodules.weak_labels.parse_mode``).
        seed: seed of the draws (>= 0).
        thin_labels: label values of the dataset's thin structures (its description),
            for modes that drop rather than erode them.
        task: the task whose class indices the sampler and the quality use.
        patch_shape: the training patch in the volume's three axes.
        sampler: ``label`` or ``uniform``, as the data module's.
        label_probabilities: class index -> relative probability of a patch centre.
    """

    def __init__(
        self,
        specs: Sequence[str | Mapping[str, Any]],
        *,
        seed: int,
        thin_labels: tuple[int, ...],
        task: Task,
        patch_shape: tuple[int, ...],
        sampler: Literal["label", "uniform"],
        label_probabilities: Mapping[int, float],
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"weak_label_seed must be an integer >= 0, got {seed!r}")
        self.specs = list(specs)
        self.modes: list[WeakLabelMode] = resolve_modes(self.specs, thin_labels=thin_labels)
        for mode in self.modes:
            unknown = sorted(set(getattr(mode, "thin_labels", None) or ()) - set(task.to_index))
            if unknown:
                raise ValueError(
                    f"weak-label mode {mode.name!r} names thin_labels {unknown}, which are not "
                    f"label values of the class map {sorted(set(task.to_index) - {0})}"
                )
        self.seed = seed
        self.task = task
        self.patch_shape = patch_shape
        self.sampler = sampler
        self.label_probabilities = dict(label_probabilities)
        self.labels: dict[str, WeakLabel] = {}
        self.quality: dict[str, float] = {}

    def draw(self, records: Sequence[SubjectRecord], manifest: Any) -> None:
        """Draw every record's weak label once and measure it against the truth.

        Raises:
            ManifestError: naming the subject and file a mode cannot apply to, or
                whose weak label leaves no place to centre a training patch.
        """
        self.labels.clear()
        scores = []
        for record in records:
            truth = read_label(record.label)
            where = f"Manifest '{manifest}': subject '{record.subject}', file '{record.label}'"
            # Seeded by name, so a subject's weak label is the same in every split.
            seed = (self.seed << 32) + zlib.crc32(record.subject.encode())
            try:
                weak, mask, draws = draw_weak_label(truth, self.modes, seed=seed)
            except ValueError as error:
                raise ManifestError(
                    f"{where}: weak labels {self.specs} do not apply: {error}"
                ) from error
            sampling = self.sampling_map(weak, mask)
            if not sampling[self._centre_region(mask.shape)].any():
                raise ManifestError(
                    f"{where}: weak labels {self.specs} leave {int(mask.sum())} labelled "
                    f"voxels, too few for any training patch of size {list(self.patch_shape)} "
                    "(with the sampler's class probabilities) to hold one; label more slices "
                    "or use a smaller patch"
                )
            self.labels[record.subject] = WeakLabel(weak, mask, sampling, draws_to_records(draws))
            scores.append(
                label_dice(
                    self.task.index_volume(weak),
                    self.task.index_volume(truth),
                    mask=mask,
                    num_classes=self.task.num_classes,
                    class_names=dict(enumerate(self.task.class_names)),
                )
            )
        self.quality = {
            key: float(np.nanmean([score[key] for score in scores])) for key in scores[0]
        }

    def restrict(self, subject: str, keep: np.ndarray) -> None:
        """Unlabel a subject's voxels outside ``keep`` and recompute where patches may go.

        For a module that trains on part of the weak label only (label cleansing's
        selected slices), so that no training patch falls where it has no loss.

        Raises:
            ValueError: no training patch can be centred on what is left.
        """
        drawn = self.labels[subject]
        mask = (drawn.mask * (np.asarray(keep) > 0)).astype(drawn.mask.dtype)
        sampling = self.sampling_map(drawn.label, mask)
        if not sampling[self._centre_region(mask.shape)].any():
            raise ValueError(
                f"subject {subject!r}: the kept part of its weak label leaves no place for a "
                f"training patch of size {list(self.patch_shape)}"
            )
        self.labels[subject] = WeakLabel(drawn.label, mask, sampling, drawn.draws)

    @property
    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Subject -> its recorded draws (JSON-ready), to replay with ``apply_weak_label``."""
        return {subject: weak.draws for subject, weak in self.labels.items()}

    def sampling_map(self, weak: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Where training patches may be centred under weak labels (0: nowhere).

        A centre is allowed where the patch around it holds a labelled voxel, so
        no patch is all unlabelled. For the label sampler the map holds the class
        index + 1 of a labelled centre (an unlabelled allowed centre counts as
        background) and only classes with a sampling probability count; for the
        uniform sampler it is 1 wherever a centre is allowed.
        """
        reachable = ndimage.maximum_filter(mask, size=self.patch_shape, mode="constant") > 0
        if self.sampler == "uniform":
            return reachable.astype(np.uint8)
        classes = np.where(mask > 0, self.task.index_volume(weak) + 1, 1)
        wanted = [index + 1 for index, p in self.label_probabilities.items() if p > 0]
        return np.where(reachable & np.isin(classes, wanted), classes, 0).astype(np.uint8)

    def _centre_region(self, shape: Sequence[int]) -> tuple[slice, ...]:
        """The voxels where a patch centre keeps the patch inside the volume (as TorchIO)."""
        return tuple(
            slice(p // 2, s - (p - 1) // 2) for p, s in zip(self.patch_shape, shape, strict=True)
        )
