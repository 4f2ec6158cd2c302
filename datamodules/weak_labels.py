"""Weak labels simulated from a ground-truth label volume (threads 1 and 2 of the brief).

Clinicians label head MRI by semi-automatic region growing plus slice-by-slice manual
correction, which leaves labels that are sparse, noisy and missing in places. Three modes
simulate that from a clean label volume ``(x, y, z)``, slices along ``axis`` (the last, axial,
by default), each with one severity knob:

- ``sparse`` (`SparseSlices`): only every ``k``-th slice is labelled, or a random ``fraction``
  of slices with no two adjacent (the selection that label cleansing trains on).
- ``noisy`` (`NoisyBoundaries`): per slice and structure, independently, the boundary with the
  background moves in (erosion) or out (dilation) by 1 to ``max_radius`` voxels (2D morphology
  in the slice); slices shift by a voxel or two; spurious blobs appear; thin vessel segments
  are dropped. Boundaries become discontinuous from slice to slice. Presets ``mild``, ``severe``.
- ``missing`` (`MissingStructures`): each structure is unlabelled in a random ``fraction`` of
  the slices that show it.

The TorchIO way: each mode's *parameters* (a frozen dataclass) ``sample`` a *draw* (a frozen
dataclass of plain ints: which slices, which radii, where the blobs go) from a
``numpy.random.Generator``; the draw's ``apply`` is deterministic. A run can record the draws
(``dataclasses.asdict``) and replay them with `apply_weak_label`.

Every result is a pair ``(weak_label, mask)``: ``mask`` is ``uint8``, 1 where a voxel is
labelled and 0 where it is not (what the masked losses take), and ``weak_label`` is 0 wherever
``mask`` is 0, so no ground truth leaks through unlabelled voxels. Modes compose in the order
given; mode ``i`` draws from ``numpy.random.default_rng([seed, i])``.

Example:
    >>> truth = np.zeros((8, 8, 6), dtype=np.uint8)
    >>> truth[2:6, 2:6, :] = 1
    >>> weak, mask = simulate_weak_label(truth, ["sparse:2", "noisy:mild"], seed=0)
    >>> float(mask.mean())
    0.5
    >>> label_dice(weak, truth, mask=mask, num_classes=2)["labelled_fraction"]
    0.5
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import ndimage

from datamodules.phantom import CLASS_NAMES, VESSEL_LABEL

NUM_CLASSES = 1 + len(CLASS_NAMES)
SLICE_AXIS = 2  # axial slices along the last axis of (x, y, z)
Fill = Literal["unlabelled", "background"]
FILLS: tuple[str, ...] = ("unlabelled", "background")


# ----------------------------------------------------------------------------- validation


def _integer(owner: str, name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise a ValueError naming the field and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner} {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner} {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _number(owner: str, name: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
    """Return ``value`` as a float in ``[low, high]``, or raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner} {name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{owner} {name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _slice_axis(axis: int, ndim: int) -> int:
    """Return ``axis`` made non-negative for a volume of ``ndim`` axes."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a label with {ndim} axes")
    return axis % ndim


def _checked_label(label: np.ndarray) -> np.ndarray:
    """Return ``label`` as an array, or raise a ValueError if it is no 3D integer volume."""
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"label must be a 3D volume, got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must hold integer classes, got dtype {label.dtype}")
    if label.size and label.min() < 0:
        raise ValueError(f"label classes must be >= 0, got {label.min()}")
    return label


def _disk(radius: int) -> np.ndarray:
    """2D footprint of the voxels within ``radius`` of the centre (a cross for radius 1)."""
    grid = np.arange(-radius, radius + 1)
    return grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2


def _slices(array: np.ndarray, axis: int) -> np.ndarray:
    """A view of ``array`` with the slice axis last, so ``view[..., s]`` is slice ``s``."""
    return np.moveaxis(array, axis, -1)


# ----------------------------------------------------------------------------- sparse


@dataclass(frozen=True)
class SparseDraw:
    """The labelled slices of one `SparseSlices` draw."""

    axis: int
    slices: tuple[int, ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)`` with every slice not in ``slices`` unlabelled."""
        keep = np.zeros(label.shape[self.axis], dtype=bool)
        keep[list(self.slices)] = True
        mask = mask.copy()
        _slices(mask, self.axis)[..., ~keep] = 0
        return label.copy(), mask


@dataclass(frozen=True)
class SparseSlices:
    """Label only some slices: every ``k``-th one, or a random ``fraction`` with none adjacent.

    Give exactly one of ``k`` and ``fraction``.

    Attributes:
        k: label slices ``offset, offset + k, ...``; ``k = 1`` labels every slice.
        fraction: label ``round(fraction * n_slices)`` slices (at least one), drawn uniformly
            among the selections with no two adjacent slices; at most 0.5.
        axis: the slice axis.
        offset: first labelled slice for ``k``, in ``[0, k)``; None draws it at random.

    Example:
        >>> SparseSlices(k=4).sample(np.zeros((4, 4, 8), int), np.random.default_rng(0)).slices
        (3, 7)
    """

    name: ClassVar[str] = "sparse"

    k: int | None = None
    fraction: float | None = None
    axis: int = SLICE_AXIS
    offset: int | None = None

    def __post_init__(self) -> None:
        if (self.k is None) == (self.fraction is None):
            raise ValueError(
                f"sparse needs exactly one of k and fraction, got k={self.k!r}, "
                f"fraction={self.fraction!r}"
            )
        if self.k is not None:
            _integer("sparse", "k", self.k, minimum=1)
        if self.fraction is not None:
            value = _number("sparse", "fraction", self.fraction, 0.0, 0.5)
            if value == 0:
                raise ValueError(f"sparse fraction must be > 0, got {self.fraction!r}")
        _integer("sparse", "axis", self.axis)
        if self.offset is not None:
            if self.k is None:
                raise ValueError(f"sparse offset needs k, got offset={self.offset!r} alone")
            offset = _integer("sparse", "offset", self.offset, minimum=0)
            if offset >= self.k:
                raise ValueError(f"sparse offset must be < k={self.k}, got {offset}")

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields for a severity shorthand: an integer is ``k``, a fraction is ``fraction``."""
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return {"k": value}
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return {"fraction": value}
        raise ValueError(f"sparse severity must be k (an integer) or a fraction, got {value!r}")

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> SparseDraw:
        """Draw the labelled slices for a volume shaped like ``label``."""
        axis = _slice_axis(self.axis, np.ndim(label))
        n_slices = np.shape(label)[axis]
        if self.k is not None:
            offset = int(rng.integers(self.k)) if self.offset is None else self.offset
            return SparseDraw(axis, tuple(range(offset, n_slices, self.k)))
        # fraction <= 0.5 keeps count <= ceil(n_slices / 2): a non-adjacent selection exists.
        count = max(1, round(self.fraction * n_slices))
        # Uniform over non-adjacent selections: choose `count` of `n - count + 1` positions and
        # spread the i-th chosen one by i (a bijection onto the gapped selections).
        chosen = np.sort(rng.choice(n_slices - count + 1, size=count, replace=False))
        return SparseDraw(axis, tuple(int(c) + i for i, c in enumerate(chosen)))


# ----------------------------------------------------------------------------- noisy


@dataclass(frozen=True)
class NoisyDraw:
    """What one `NoisyBoundaries` draw changes, as tuples of plain ints per slice.

    Attributes:
        axis: the slice axis.
        vessel_label: the class of thin structures that are dropped, not eroded; None if none.
        boundary: ``(slice, class, radius)``: the class's boundary with the background moves
            out (dilation, ``radius > 0``) or in (erosion, ``radius < 0``) by ``|radius|``.
        dropped_vessels: ``(slice, i, j)``: the vessel segment through in-slice voxel ``(i, j)``
            is dropped and takes the label of the nearest non-vessel voxel.
        blobs: ``(slice, i, j, radius, class)``: a disk of ``class`` painted over the slice.
        shifts: ``(slice, di, dj)``: the slice's labels move by ``(di, dj)``; background fills.
    """

    axis: int
    vessel_label: int | None
    boundary: tuple[tuple[int, int, int], ...]
    dropped_vessels: tuple[tuple[int, int, int], ...]
    blobs: tuple[tuple[int, int, int, int, int], ...]
    shifts: tuple[tuple[int, int, int], ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)``; per slice: boundaries, vessels, blobs, then the shift."""
        label = label.copy()
        view = _slices(label, self.axis)
        touched = (*self.boundary, *self.dropped_vessels, *self.blobs, *self.shifts)
        for index in sorted({entry[0] for entry in touched}):
            view[..., index] = self._apply_to_slice(view[..., index], index)
        return label, mask.copy()

    def _apply_to_slice(self, plane: np.ndarray, index: int) -> np.ndarray:
        plane = plane.copy()
        for _, cls, radius in (entry for entry in self.boundary if entry[0] == index):
            footprint = _disk(abs(radius))
            if radius > 0:  # grow into the background only: structures never overwrite others
                grown = ndimage.binary_dilation(plane == cls, structure=footprint)
                plane[grown & (plane == 0)] = cls
            else:  # shrink from the background only: borders with other structures stay put
                kept = ndimage.binary_erosion(plane > 0, structure=footprint)
                plane[(plane == cls) & ~kept] = 0
        dropped = [entry[1:] for entry in self.dropped_vessels if entry[0] == index]
        if dropped and self.vessel_label is not None:
            vessels = plane == self.vessel_label
            if not vessels.all():
                components, _ = ndimage.label(vessels, structure=np.ones((3, 3), dtype=bool))
                _, nearest = ndimage.distance_transform_edt(vessels, return_indices=True)
                for i, j in dropped:
                    if components[i, j]:
                        segment = components == components[i, j]
                        plane[segment] = plane[nearest[0][segment], nearest[1][segment]]
        for _, i, j, radius, cls in (entry for entry in self.blobs if entry[0] == index):
            rows = np.arange(plane.shape[0])[:, None] - i
            cols = np.arange(plane.shape[1])[None, :] - j
            plane[rows**2 + cols**2 <= radius**2] = cls
        for _, di, dj in (entry for entry in self.shifts if entry[0] == index):
            plane = _shifted(plane, di, dj)
        return plane


def _shifted(plane: np.ndarray, di: int, dj: int) -> np.ndarray:
    """Return ``plane`` moved by ``(di, dj)`` voxels, background where nothing moved in."""
    out = np.zeros_like(plane)
    rows, cols = plane.shape
    out[max(di, 0) : rows + min(di, 0), max(dj, 0) : cols + min(dj, 0)] = plane[
        max(-di, 0) : rows + min(-di, 0), max(-dj, 0) : cols + min(-dj, 0)
    ]
    return out


@dataclass(frozen=True)
class NoisyBoundaries:
    """Per-slice label noise of region growing plus manual correction (defaults: ``mild``).

    Every draw is independent per slice, which is what makes boundaries jump from slice to
    slice. Vessels (``vessel_label``) are too thin to erode; their thin segments are dropped
    instead (relabelled as the surrounding tissue).

    Attributes:
        max_radius: boundary erosion or dilation radius, drawn from 1 to ``max_radius`` voxels.
        boundary_probability: chance that a structure's boundary moves in a slice.
        max_shift: largest in-plane shift of a slice, voxels per axis.
        shift_probability: chance that a slice is shifted.
        blobs_per_slice: mean number (Poisson) of spurious blobs per slice; each is a disk of a
            random class of the volume, centred within ``max_blob_radius`` of the slice's
            structures.
        max_blob_radius: blob radius, drawn from 1 to ``max_blob_radius`` voxels.
        vessel_drop_probability: chance that a thin vessel segment of a slice is dropped.
        thin_vessel_radius: a vessel segment is thin if no voxel of it lies deeper than this
            (in-slice distance to its edge, voxels).
        axis: the slice axis.
        vessel_label: class dropped instead of eroded; None treats every class alike.

    Example:
        >>> NoisyBoundaries.severity("severe")["max_radius"]
        2
    """

    name: ClassVar[str] = "noisy"
    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "mild": {
            "max_radius": 1,
            "boundary_probability": 0.5,
            "max_shift": 1,
            "shift_probability": 0.2,
            "blobs_per_slice": 0.2,
            "max_blob_radius": 1,
            "vessel_drop_probability": 0.2,
        },
        "severe": {
            "max_radius": 2,
            "boundary_probability": 1.0,
            "max_shift": 2,
            "shift_probability": 0.5,
            "blobs_per_slice": 1.0,
            "max_blob_radius": 3,
            "vessel_drop_probability": 0.5,
        },
    }

    max_radius: int = 1
    boundary_probability: float = 0.5
    max_shift: int = 1
    shift_probability: float = 0.2
    blobs_per_slice: float = 0.2
    max_blob_radius: int = 1
    vessel_drop_probability: float = 0.2
    thin_vessel_radius: float = 1.5
    axis: int = SLICE_AXIS
    vessel_label: int | None = VESSEL_LABEL

    def __post_init__(self) -> None:
        _integer("noisy", "max_radius", self.max_radius, minimum=1)
        _integer("noisy", "max_shift", self.max_shift, minimum=0)
        _integer("noisy", "max_blob_radius", self.max_blob_radius, minimum=1)
        for name in ("boundary_probability", "shift_probability", "vessel_drop_probability"):
            _number("noisy", name, getattr(self, name), 0.0, 1.0)
        _number("noisy", "blobs_per_slice", self.blobs_per_slice)
        _number("noisy", "thin_vessel_radius", self.thin_vessel_radius)
        _integer("noisy", "axis", self.axis)
        if self.vessel_label is not None:
            _integer("noisy", "vessel_label", self.vessel_label, minimum=1)

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields of a preset: ``mild`` or ``severe``."""
        if value not in cls.PRESETS:
            raise ValueError(f"noisy severity must be one of {list(cls.PRESETS)}, got {value!r}")
        return dict(cls.PRESETS[value])

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> NoisyDraw:
        """Draw every slice's boundary moves, dropped vessels, blobs and shift for ``label``."""
        label = _checked_label(label)
        axis = _slice_axis(self.axis, label.ndim)
        view = _slices(label, axis)
        n_slices = view.shape[-1]
        classes = [int(c) for c in np.unique(label) if c > 0]
        shaped = [c for c in classes if c != self.vessel_label]
        # Fixed-shape draws first, so that what one slice shows never shifts another's numbers.
        moves = rng.random((n_slices, len(shaped))) < self.boundary_probability
        radii = rng.integers(1, self.max_radius + 1, (n_slices, len(shaped)))
        signs = rng.choice(np.array([-1, 1]), (n_slices, len(shaped)))
        shifted = rng.random(n_slices) < self.shift_probability
        n_blobs = rng.poisson(self.blobs_per_slice, n_slices)
        offsets = [
            (di, dj)
            for di in range(-self.max_shift, self.max_shift + 1)
            for dj in range(-self.max_shift, self.max_shift + 1)
            if (di, dj) != (0, 0)
        ]
        boundary, dropped, blobs, shifts = [], [], [], []
        for index in range(n_slices):
            plane = view[..., index]
            present = set(np.unique(plane).tolist())
            for column, cls in enumerate(shaped):
                if moves[index, column] and cls in present:
                    boundary.append((index, cls, int(signs[index, column] * radii[index, column])))
            if self.vessel_label in present:
                dropped.extend((index, *ij) for ij in self._thin_vessels(plane, rng))
            if n_blobs[index] and present - {0}:
                near = ndimage.binary_dilation(plane > 0, structure=_disk(self.max_blob_radius))
                candidates = np.argwhere(near)
                picks = rng.choice(len(candidates), n_blobs[index])
                blob_radii = rng.integers(1, self.max_blob_radius + 1, n_blobs[index])
                blob_classes = rng.choice(np.array(classes), n_blobs[index])
                for pick, radius, cls in zip(picks, blob_radii, blob_classes, strict=True):
                    i, j = candidates[pick]
                    blobs.append((index, int(i), int(j), int(radius), int(cls)))
            if shifted[index] and offsets:
                di, dj = offsets[rng.integers(len(offsets))]
                shifts.append((index, di, dj))
        return NoisyDraw(
            axis, self.vessel_label, tuple(boundary), tuple(dropped), tuple(blobs), tuple(shifts)
        )

    def _thin_vessels(self, plane: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
        """One voxel ``(i, j)`` of each thin vessel segment of ``plane`` chosen for dropping."""
        vessels = plane == self.vessel_label
        components, count = ndimage.label(vessels, structure=np.ones((3, 3), dtype=bool))
        depth = ndimage.distance_transform_edt(vessels)
        deepest = ndimage.maximum(depth, components, np.arange(1, count + 1))
        drop = rng.random(count) < self.vessel_drop_probability
        chosen = []
        for component in np.flatnonzero(drop & (np.asarray(deepest) <= self.thin_vessel_radius)):
            i, j = np.argwhere(components == component + 1)[0]
            chosen.append((int(i), int(j)))
        return chosen


# ----------------------------------------------------------------------------- missing


@dataclass(frozen=True)
class MissingDraw:
    """The ``(slice, class)`` pairs of one `MissingStructures` draw that lose their labels."""

    axis: int
    fill: Fill
    dropped: tuple[tuple[int, int], ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)``: dropped structures background, unlabelled if so set."""
        label, mask = label.copy(), mask.copy()
        label_view, mask_view = _slices(label, self.axis), _slices(mask, self.axis)
        for index, cls in self.dropped:
            where = label_view[..., index] == cls
            label_view[..., index][where] = 0
            if self.fill == "unlabelled":
                mask_view[..., index][where] = 0
        return label, mask


@dataclass(frozen=True)
class MissingStructures:
    """Leave structures out of some slices, as an annotator who skipped them would.

    Attributes:
        fraction: chance that a structure is missing from a slice that shows it. For one seed
            the missing sets are nested: a larger fraction drops a superset.
        axis: the slice axis.
        classes: the classes that can go missing; None means every foreground class.
        fill: ``"unlabelled"`` (default): the structure's voxels leave the mask, the natural
            choice for masked losses; ``"background"``: they stay labelled, as background (a
            wrong label, harder on the network).

    Example:
        >>> MissingStructures.severity(0.3)
        {'fraction': 0.3}
    """

    name: ClassVar[str] = "missing"

    fraction: float = 0.25
    axis: int = SLICE_AXIS
    classes: tuple[int, ...] | None = None
    fill: Fill = "unlabelled"

    def __post_init__(self) -> None:
        _number("missing", "fraction", self.fraction, 0.0, 1.0)
        _integer("missing", "axis", self.axis)
        if self.classes is not None:
            classes = (self.classes,) if isinstance(self.classes, int) else self.classes
            if isinstance(classes, str) or not isinstance(classes, Sequence):
                raise ValueError(f"missing classes must be integers, got {self.classes!r}")
            checked = tuple(_integer("missing", "classes", c, minimum=1) for c in classes)
            object.__setattr__(self, "classes", checked)
        if self.fill not in FILLS:
            raise ValueError(f"missing fill must be one of {list(FILLS)}, got {self.fill!r}")

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields for a severity shorthand: the fraction."""
        return {"fraction": value}

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> MissingDraw:
        """Draw which structures go missing from which slices of ``label``."""
        label = _checked_label(label)
        axis = _slice_axis(self.axis, label.ndim)
        view = _slices(label, axis)
        top = int(label.max(initial=0))
        # One uniform per (slice, class), classes 1..top, whatever the slice shows, so that the
        # draws of a seed are nested across fractions.
        chance = rng.random((view.shape[-1], top))
        eligible = range(1, top + 1) if self.classes is None else self.classes
        dropped = [
            (index, cls)
            for index in range(view.shape[-1])
            for cls in eligible
            if cls <= top
            and chance[index, cls - 1] < self.fraction
            and (view[..., index] == cls).any()
        ]
        return MissingDraw(axis, self.fill, tuple(dropped))


# ----------------------------------------------------------------------------- entry points

WeakLabelMode = SparseSlices | NoisyBoundaries | MissingStructures
WeakLabelDraw = SparseDraw | NoisyDraw | MissingDraw
ModeSpec = WeakLabelMode | Mapping[str, Any] | str
MODES: dict[str, type[WeakLabelMode]] = {
    mode.name: mode for mode in (SparseSlices, NoisyBoundaries, MissingStructures)
}


def _scalar(text: str) -> Any:
    """Parse one value of a string spec: an int, a float, ``none`` or the text itself."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return None if text.lower() == "none" else text


def parse_mode(spec: ModeSpec) -> WeakLabelMode:
    """Turn a mode spec into its parameters.

    Specs: a mode's parameters as they are; a dict ``{"mode": name, **fields}`` with an
    optional ``"severity"`` shorthand that explicit fields override; or a string
    ``"name[:severity][,field=value...]"``. Severities: ``sparse`` an integer ``k`` or a
    fraction, ``noisy`` ``mild`` or ``severe``, ``missing`` a fraction.

    Raises:
        ValueError: naming the unknown mode, field, severity or the bad value.

    Example:
        >>> parse_mode("sparse:4")
        SparseSlices(k=4, fraction=None, axis=2, offset=None)
        >>> parse_mode({"mode": "noisy", "severity": "severe", "max_shift": 0}).max_shift
        0
    """
    if isinstance(spec, WeakLabelMode):
        return spec
    if isinstance(spec, str):
        name, _, rest = spec.strip().partition(":")
        fields: dict[str, Any] = {"mode": name.strip()}
        for position, item in enumerate(part.strip() for part in rest.split(",") if rest):
            key, equals, value = item.partition("=")
            if equals:
                fields[key.strip()] = _scalar(value.strip())
            elif position == 0 and item:
                fields["severity"] = _scalar(item)
            else:
                raise ValueError(f"weak-label spec {spec!r}: expected field=value, got {item!r}")
        return _mode_from_fields(fields, spec)
    if isinstance(spec, Mapping):
        return _mode_from_fields(dict(spec), spec)
    raise ValueError(f"a weak-label mode spec must be a str, dict or mode, got {spec!r}")


def _mode_from_fields(fields: dict[str, Any], spec: Any) -> WeakLabelMode:
    name = fields.pop("mode", None)
    if name not in MODES:
        raise ValueError(
            f"weak-label spec {spec!r}: unknown mode {name!r}; choose one of {list(MODES)}"
        )
    mode = MODES[name]
    known = {field.name for field in dataclasses.fields(mode)}
    unknown = sorted(set(fields) - known - {"severity"})
    if unknown:
        raise ValueError(
            f"weak-label spec {spec!r}: unknown {name} field(s) {unknown}; "
            f"choose from {sorted(known)} or severity"
        )
    options = mode.severity(fields.pop("severity")) if "severity" in fields else {}
    return mode(**(options | fields))


def _run(
    label: np.ndarray, modes: Sequence[ModeSpec], seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[WeakLabelDraw, ...]]:
    label = _checked_label(label)
    seed = _integer("simulate_weak_label", "seed", seed, minimum=0)
    if isinstance(modes, str | Mapping | WeakLabelMode):
        modes = [modes]
    parsed = [parse_mode(spec) for spec in modes]
    weak, mask = label.copy(), np.ones(label.shape, dtype=np.uint8)
    draws = []
    for index, mode in enumerate(parsed):
        draw = mode.sample(weak, np.random.default_rng([seed, index]))
        weak, mask = draw.apply(weak, mask)
        draws.append(draw)
    weak[mask == 0] = 0
    return weak, mask, tuple(draws)


def simulate_weak_label(
    label: np.ndarray, modes: Sequence[ModeSpec], *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a weak label from a ground-truth label volume.

    Args:
        label: ground truth, integer classes, shape ``(x, y, z)``; never modified.
        modes: mode specs (see `parse_mode`), applied in order; empty for the full label.
        seed: non-negative; the same seed and modes always give the same result.

    Returns:
        ``(weak_label, mask)``: the weak label (``label``'s dtype, 0 where unlabelled) and the
        ``uint8`` mask of labelled voxels.

    Example:
        >>> truth = np.ones((4, 4, 4), dtype=np.uint8)
        >>> int(simulate_weak_label(truth, ["sparse:2"], seed=0)[1].sum())
        32
    """
    weak, mask, _ = _run(label, modes, seed)
    return weak, mask


def sample_weak_label(
    label: np.ndarray, modes: Sequence[ModeSpec], *, seed: int
) -> tuple[WeakLabelDraw, ...]:
    """The draws `simulate_weak_label` makes for these arguments, to record and replay."""
    return _run(label, modes, seed)[2]


def apply_weak_label(
    label: np.ndarray, draws: Sequence[WeakLabelDraw]
) -> tuple[np.ndarray, np.ndarray]:
    """Replay recorded draws on ``label``: the same ``(weak_label, mask)`` as when drawn."""
    weak, mask = _checked_label(label).copy(), np.ones(np.shape(label), dtype=np.uint8)
    for draw in draws:
        weak, mask = draw.apply(weak, mask)
    weak[mask == 0] = 0
    return weak, mask


def label_dice(
    weak: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    num_classes: int = NUM_CLASSES,
    class_names: Mapping[int, str] | None = None,
) -> dict[str, float]:
    """How weak a weak label is: its per-class Dice against the truth, on labelled voxels.

    Without ``mask`` every voxel counts (unlabelled ones are background in a weak label, so a
    sparse label then scores low); with it only labelled ones do (a sparse label scores 1).

    Args:
        weak: the weak label.
        truth: the ground truth, same shape.
        mask: labelled voxels (nonzero); None for all.
        num_classes: classes, background included; Dice is reported for 1..num_classes-1.
        class_names: name per class index; default the phantom's names, else ``class_<i>``.

    Returns:
        ``dice_<name>`` per foreground class (NaN where the class is absent from both on the
        labelled voxels), ``dice_mean`` (their mean, NaN if all are) and ``labelled_fraction``.

    Example:
        >>> truth = np.array([[[0, 1, 1, 2]]])
        >>> label_dice(np.array([[[0, 1, 0, 2]]]), truth, num_classes=3)["dice_cerebrum"]
        0.6666666666666666
    """
    weak, truth = np.asarray(weak), np.asarray(truth)
    if weak.shape != truth.shape:
        raise ValueError(f"weak shape {weak.shape} differs from truth shape {truth.shape}")
    labelled = np.ones(truth.shape, bool) if mask is None else np.asarray(mask) > 0
    if labelled.shape != truth.shape:
        raise ValueError(f"mask shape {labelled.shape} differs from truth shape {truth.shape}")
    names = CLASS_NAMES if class_names is None else class_names
    scores: dict[str, float] = {}
    w, t = weak[labelled], truth[labelled]
    for cls in range(1, num_classes):
        in_weak, in_truth = w == cls, t == cls
        total = int(in_weak.sum() + in_truth.sum())
        overlap = int((in_weak & in_truth).sum())
        scores[f"dice_{names.get(cls, f'class_{cls}')}"] = (
            2 * overlap / total if total else math.nan
        )
    measured = [v for v in scores.values() if not math.isnan(v)]
    scores["dice_mean"] = sum(measured) / len(measured) if measured else math.nan
    scores["labelled_fraction"] = float(labelled.mean()) if labelled.size else math.nan
    return scores
