"""Weak labels simulated from a ground-truth label volume (threads 1 and 2 of the brief).

Clinicians label head MRI by semi-automatic region growing plus slice-by-slice manual
correction, which leaves labels that are sparse, noisy and missing in places. Three modes
simulate that from a clean label volume ``(x, y, z)``, slices along ``axis`` (the last, axial,
by default), each with one severity knob:

- ``sparse`` (`SparseSlices`): only every ``k``-th slice is labelled, or a random ``fraction``
  of slices with no two adjacent (the selection that label cleansing trains on).
- ``noisy`` (`NoisyBoundaries`): per slice and structure, independently, the boundary with the
  background moves in (erosion) or out (dilation) by 1 to ``max_radius`` voxels (2D morphology
  in the slice); slices shift by a voxel or two; spurious blobs appear; thin segments of the
  dataset's thin structures (``thin_labels``, e.g. vessels) are dropped. Boundaries become
  discontinuous from slice to slice. Presets ``mild``, ``severe``.
- ``missing`` (`MissingStructures`): each structure is unlabelled in a random ``fraction`` of
  the slices that show it.

Nothing here knows a dataset: `resolve_modes` gives the ``noisy`` modes the thin structures
of the dataset description, and `label_dice` takes the class count and names.

The TorchIO way: each mode's *parameters* (a frozen dataclass) ``sample`` a *draw* (a frozen
dataclass of plain ints: which slices, which radii, where the blobs go) from a
``numpy.random.Generator``; the draw's ``apply`` is deterministic. A run can record the draws
(`draws_to_records`, JSON-ready) and replay them (`draws_from_records`, `apply_weak_label`).

Every result is a pair ``(weak_label, mask)``: ``mask`` is ``uint8``, 1 where a voxel is
labelled and 0 where it is not (what the masked losses take), and ``weak_label`` is 0 wherever
``mask`` is 0, so no ground truth leaks through unlabelled voxels. Modes compose in the order
given; mode ``i`` draws from ``numpy.random.default_rng([seed, i])``.

Example:
    >>> import json
    >>> import numpy as np
    >>> truth = np.zeros((8, 8, 6), dtype=np.uint8)
    >>> truth[2:6, 2:6, :] = 1
    >>> modes = resolve_modes(["sparse:2", "noisy:mild"], thin_labels=())
    >>> weak, mask = simulate_weak_label(truth, modes, seed=0)
    >>> float(mask.mean())
    0.5
    >>> label_dice(weak, truth, mask=mask, num_classes=2, class_names={1: "box"})[
    ...     "labelled_fraction"]
    0.5
    >>> records = json.dumps(draws_to_records(sample_weak_label(truth, modes, seed=0)))
    >>> replayed = apply_weak_label(truth, draws_from_records(json.loads(records)))
    >>> bool((replayed[0] == weak).all() and (replayed[1] == mask).all())
    True
"""

from __future__ import annotations

from datamodules.weak_labels._checks import SLICE_AXIS
from datamodules.weak_labels.dice import label_dice
from datamodules.weak_labels.missing import FILLS, Fill, MissingDraw, MissingStructures
from datamodules.weak_labels.noisy import NoisyBoundaries, NoisyDraw
from datamodules.weak_labels.records import DRAWS, draws_from_records, draws_to_records
from datamodules.weak_labels.simulate import (
    MODES,
    ModeSpec,
    WeakLabelDraw,
    WeakLabelMode,
    apply_weak_label,
    draw_weak_label,
    parse_mode,
    resolve_modes,
    sample_weak_label,
    simulate_weak_label,
)
from datamodules.weak_labels.sparse import SparseDraw, SparseSlices

__all__ = [
    "DRAWS",
    "FILLS",
    "MODES",
    "SLICE_AXIS",
    "Fill",
    "MissingDraw",
    "MissingStructures",
    "ModeSpec",
    "NoisyBoundaries",
    "NoisyDraw",
    "SparseDraw",
    "SparseSlices",
    "WeakLabelDraw",
    "WeakLabelMode",
    "apply_weak_label",
    "draw_weak_label",
    "draws_from_records",
    "draws_to_records",
    "label_dice",
    "parse_mode",
    "resolve_modes",
    "sample_weak_label",
    "simulate_weak_label",
]
