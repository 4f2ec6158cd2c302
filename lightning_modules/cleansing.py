"""``LabelCleansingModule``: label cleansing from incomplete or noisy labels (thread 1).

The report's method (CARS 2020): train a 2D network on a subset of non-adjacent labelled
slices of the weak label only, then predict every slice, so that the reconstructed label
has continuous, smooth boundaries: unlabelled slices are filled and noisy ones corrected
by what the network learnt from the others.

Slices are chosen per subject by a `datamodules.slice_selection.SliceSelection`. One
network trains per *group*: per fold of the selection (``folds`` >= 2 gives complementary
subsets), across the cohort (``scope="cohort"``) or for each training subject on its own
(``scope="subject"``). Each training patch goes to the network of the group its slice
belongs to; voxels of unselected slices are out of every loss. `reconstruct` predicts a
subject's every slice; with complementary subsets a slice that one network trained on is
predicted by the others only, so that no slice is predicted by a network that saw it.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from datamodules.contract import SegmentationData
from datamodules.slice_selection import SliceSelection, labelled_slices, slice_groups
from lightning_modules.divergence import check_finite
from lightning_modules.inference import class_indices
from lightning_modules.segmentation import SegmentationModule

Scope = Literal["cohort", "subject"]


class LabelCleansingModule(SegmentationModule):
    """Networks trained on selected slices of weak labels, predicting every slice.

    Args:
        selection: `SliceSelection` fields (``stride``, ``offset``, ``fraction``,
            ``min_gap``, ``folds``, ``axis``).
        selection_seed: seed of a random ``fraction`` selection; each subject's draw
            depends on it and on the subject's name.
        scope: ``cohort`` trains one network per fold on every training subject;
            ``subject`` one network per fold and training subject.
        **options: as `SegmentationModule` (network, loss, optimiser, shapes).
    """

    def __init__(
        self,
        *args: Any,
        selection: dict[str, Any] | None = None,
        selection_seed: int = 0,
        scope: Scope = "cohort",
        **options: Any,
    ) -> None:
        super().__init__(*args, **options)
        self.selection = SliceSelection(**(selection or {}))
        if scope not in ("cohort", "subject"):
            raise ValueError(f"scope must be 'cohort' or 'subject', got {scope!r}")
        self.scope = scope
        self.selection_seed = selection_seed
        self.networks = nn.ModuleList([self.network])
        # subject -> per slice along the selection axis: the group that trains on it (0: none)
        self.slice_groups: dict[str, torch.Tensor] = {}
        # subject -> the groups whose networks reconstruct its label
        self.subject_groups: dict[str, tuple[int, ...]] = {}
        self._prepared_for: SegmentationData | None = None

    @property
    def axis(self) -> int:
        return self.selection.axis

    def prepare(self, data: SegmentationData) -> None:
        """Choose each training subject's slices, build one network per group, narrow the masks.

        Raises:
            ValueError: the data has no weak labels, or a selection cannot apply (naming
                the subject and the problem).
        """
        if self._prepared_for is data:
            return  # the library prepares before fit, Lightning's setup hook again
        super().prepare(data)
        weak = data.weak
        if weak is None:
            raise ValueError(
                "LabelCleansingModule trains on weak labels: set data.weak_labels "
                "(e.g. ['sparse:4'])"
            )
        records = data.records.get("train", [])
        drawn = weak.labels
        if not drawn:
            raise ValueError("LabelCleansingModule needs the data loaded for fit")
        folds = self.selection.folds
        self.slice_groups.clear()
        self.subject_groups.clear()
        selected_classes: set[int] = set()
        for position, record in enumerate(records):
            label = drawn[record.subject]
            first = 1 + (position * folds if self.scope == "subject" else 0)
            subsets = self._subsets(record.subject, label.mask)
            groups = slice_groups(subsets, label.mask.shape[self.axis], first=first)
            indices = data.task.index_volume(label.label)
            selected_classes |= self._check_classes(record.subject, indices, label.mask, groups)
            self.slice_groups[record.subject] = torch.from_numpy(groups)
            self.subject_groups[record.subject] = tuple(range(first, first + folds))
            keep = np.expand_dims(groups > 0, tuple(a for a in range(3) if a != self.axis))
            try:
                weak.restrict(record.subject, np.broadcast_to(keep, label.mask.shape))
            except ValueError as error:
                raise ValueError(f"label cleansing: {error}") from error
        missing = sorted(set(range(1, data.num_classes)) - selected_classes)
        if missing:
            names = [data.class_names[i] for i in missing]
            raise ValueError(
                f"label cleansing: classes {names} are in no selected slice of any training "
                "subject; no network could learn them"
            )
        n_groups = folds * (len(records) if self.scope == "subject" else 1)
        while len(self.networks) < n_groups:
            self.networks.append(self.new_network())
        self._prepared_for = data

    def _subsets(self, subject: str, mask: np.ndarray) -> list[tuple[int, ...]]:
        seed = (self.selection_seed << 32) + zlib.crc32(subject.encode())
        try:
            return self.selection.subsets(
                labelled_slices(mask, self.axis),
                n_slices=mask.shape[self.axis],
                rng=np.random.default_rng(seed),
            )
        except ValueError as error:
            raise ValueError(f"label cleansing, subject {subject!r}: {error}") from error

    def _check_classes(
        self, subject: str, indices: np.ndarray, mask: np.ndarray, groups: np.ndarray
    ) -> set[int]:
        """The classes in the subject's selected slices; raise for one left out by the selection."""
        labelled = np.where(mask > 0, indices, 0)
        other = tuple(a for a in range(3) if a != self.axis)
        present = {int(c) for c in np.unique(labelled) if c > 0}
        kept = np.moveaxis(labelled, self.axis, 0)[groups > 0]
        selected = {int(c) for c in np.unique(kept) if c > 0}
        left_out = sorted(present - selected)
        if left_out:
            where = {c: np.flatnonzero((labelled == c).any(axis=other)).tolist() for c in left_out}
            names = [self.class_names[c] for c in left_out]
            raise ValueError(
                f"label cleansing, subject {subject!r}: classes {names} are labelled in slices "
                f"{list(where.values())} but in no selected slice; choose a smaller stride"
            )
        return selected

    # --------------------------------------------------------------- training
    def voxel_groups(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per voxel of each patch, the group whose network trains on it (0: none)."""
        label = batch["label"]
        groups = torch.zeros_like(label)
        for index, (subject, location) in enumerate(
            zip(batch["subject"], batch["location"], strict=True)
        ):
            per_slice = self.slice_groups[subject].to(label.device)
            values = per_slice[int(location[self.axis]) : int(location[self.axis + 3])]
            if self.axis >= label.ndim - 1:  # a 2D patch is one slice along the squeezed axis
                groups[index] = values[0]
            else:
                shape = [1] * (label.ndim - 1)
                shape[self.axis] = -1
                groups[index] = values.view(shape).expand_as(groups[index])
        return groups

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        groups = self.voxel_groups(batch)
        mask = batch.get("mask")
        mask = torch.ones_like(batch["label"], dtype=torch.float) if mask is None else mask
        losses = []
        for group, network in enumerate(self.networks, start=1):
            in_group = (groups == group).float() * mask
            rows = in_group.flatten(1).any(1)
            if not rows.any():
                continue
            logits = network(batch["image"][rows])
            losses.append(self.loss(logits, batch["label"][rows], mask=in_group[rows]))
        if not losses:
            return None  # no patch of this batch lies on a selected slice
        loss = torch.stack(losses).sum()
        check_finite({"training loss": loss}, epoch=self.current_epoch, step=self.global_step)
        self.log(
            "train/loss",
            loss / len(losses),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["label"]),
        )
        return loss

    # ---------------------------------------------------------- reconstruction
    def segment(self, image: torch.Tensor) -> torch.Tensor:
        """Log of the mean class probabilities of every network, ``(K, H, W, D)``."""
        probabilities = torch.stack([self._probabilities(n, image) for n in self.networks])
        return probabilities.mean(0).clamp_min(1e-8).log()

    def _probabilities(self, network: nn.Module, image: torch.Tensor) -> torch.Tensor:
        return self.segment_with(network, image).softmax(0)

    @torch.no_grad()
    def reconstruct(self, subject: str, image: torch.Tensor) -> torch.Tensor:
        """Class indices ``(H, W, D)`` of a training subject's every slice.

        Each slice takes the mean probabilities of the subject's networks; with
        complementary folds, a slice that one of them trained on is left to the others.
        """
        groups = self.subject_groups[subject]
        per_slice = self.slice_groups[subject]
        probabilities = {g: self._probabilities(self.networks[g - 1], image) for g in groups}
        total = torch.stack(list(probabilities.values())).sum(0)
        # Slice axis first, after the class axis: (K, slices, ...).
        total = total.movedim(self.axis + 1, 1)
        count = torch.full((total.shape[1],), float(len(groups)))
        if self.selection.folds > 1:
            for group, probability in probabilities.items():
                seen = per_slice == group
                total[:, seen] -= probability.movedim(self.axis + 1, 1)[:, seen]
                count[seen] -= 1
        shape = [1, -1] + [1] * (total.ndim - 2)
        mean = total / count.view(shape).to(total)
        return class_indices(mean.movedim(1, self.axis + 1))

    def selection_record(self) -> dict[str, dict[str, list[int]]]:
        """Subject -> group -> the slices that group's network trained on (JSON-ready)."""
        return {
            subject: {
                str(group): np.flatnonzero(groups.numpy() == group).tolist()
                for group in self.subject_groups[subject]
            }
            for subject, groups in self.slice_groups.items()
        }
