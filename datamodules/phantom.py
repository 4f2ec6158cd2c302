"""Seeded synthetic multi-contrast head phantom cohort.

Writes a small cohort that looks enough like head MRI for every research thread to run end to end
without patient data: a heavy-T2 MR cisternography (CSF bright, parenchyma dark, vessels as flow
voids), a co-registered vessel-enhanced angiography (vessels bright, static tissue suppressed) and
a label map with the classes of Sugino et al. (2021): cerebrum, cerebellum, brainstem and vessels.

The anatomy is a set of analytic shapes (ellipsoids, tapered tubes, a branching vessel tree)
written in a fixed *template* frame in millimetres. Each subject draws one deformed coordinate
grid (random affine plus a smooth elastic field) and evaluates the shapes at those coordinates,
which is much faster than building and resampling volumes. The template is scaled isotropically
so that the whole head fits the field of view of any grid; `spacing` therefore sets the voxel
size in the header and the head's physical size, never how much of the head is visible.

Subject ``i`` of a cohort is drawn from ``numpy.random.default_rng([seed, i])``, so it does not
depend on the cohort size, and the files are gzipped with a zero mtime so that the same seed
gives the same bytes on disk.

Example:
    >>> manifest = write_phantom("data/phantom", n_subjects=12, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

CHANNELS: tuple[str, ...] = ("cisternography", "angiography")
CLASS_NAMES: dict[int, str] = {1: "cerebrum", 2: "cerebellum", 3: "brainstem", 4: "vessels"}

DEFAULT_SHAPE: tuple[int, int, int] = (96, 96, 64)
DEFAULT_SPACING: tuple[float, float, float] = (2.0, 2.0, 2.0)
MIN_AXIS_VOXELS = 16
SUBJECT_ID_FORMAT = "phantom_{:03d}"
LABEL_FILE = "label"
MANIFEST_NAME = "manifest.csv"

# Half extent (mm) of the template frame in which the anatomy below is written: the default
# 96 x 96 x 64 grid at 2 mm. Axes are RAS+ (x to the right, y anterior, z superior).
TEMPLATE_HALF_EXTENT_MM = np.array([96.0, 96.0, 64.0])
# Thinnest rendered vessel radius, in voxels of the largest spacing: thinner tubes would fall
# between voxel centres and break into pieces.
MIN_VESSEL_RADIUS_VOXELS = 0.6
# Width (voxels) of the Gaussian point-spread function that softens tissue boundaries.
PSF_SIGMA_VOXELS = 0.6
# Gzip level for the NIfTI files: 6 is zlib's default trade-off between size and speed.
GZIP_LEVEL = 6
# Edge length (voxels) of the blocks in which vessels are rasterised; only the tubes near a block
# are tested against its voxels.
VESSEL_BLOCK_VOXELS = 16

Vector = tuple[float, float, float]


class Tissue(IntEnum):
    """Tissue classes that set the intensities; several map to one label (see `TISSUE_LABEL`)."""

    BACKGROUND = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GREY_MATTER = 4
    WHITE_MATTER = 5
    CEREBELLUM = 6
    BRAINSTEM = 7


# Label of each tissue (indexed by `Tissue`); CSF, skull and scalp are background. Vessels (4)
# are not a tissue: they override this map wherever they run.
TISSUE_LABEL = np.array([0, 0, 0, 0, 1, 1, 2, 3], dtype=np.uint8)
VESSEL_LABEL = 4


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid in template millimetres."""

    center: Vector
    semi_axes: Vector

    def level(self, coords: Sequence[np.ndarray], grow_mm: float = 0.0) -> np.ndarray:
        """Return sum(((p - c) / (a + grow)) ** 2), below 1 inside; `grow_mm` dilates it."""
        return sum(
            ((p - c) / (a + grow_mm)) ** 2
            for p, c, a in zip(coords, self.center, self.semi_axes, strict=True)
        )

    def mirrored(self) -> Ellipsoid:
        """Return the left-right mirror image (x -> -x)."""
        x, y, z = self.center
        return Ellipsoid((-x, y, z), self.semi_axes)


@dataclass(frozen=True)
class Tube:
    """Straight tube whose radius tapers linearly from `start` to `end` (a capsule if equal)."""

    start: Vector
    end: Vector
    radius_start: float
    radius_end: float


@dataclass(frozen=True)
class HeadAnatomy:
    """Template anatomy in millimetres (RAS+, head centre near the origin).

    Layers from outside in: scalp, skull, a CSF layer (subarachnoid space) and the brain. The
    cerebrum is one ellipsoid plus two temporal lobes, split by a midline fissure above the deep
    midline structures, hollowed by the ventricles and the basal cistern, and kept apart from the
    cerebellum (tentorium) and the brainstem (cisterns) by thin CSF gaps, so that vessels there
    are visible in cisternography.
    """

    scalp: Ellipsoid
    scalp_thickness_mm: float
    skull_thickness_mm: float
    cerebrum: Ellipsoid
    temporal_lobe: Ellipsoid  # right one, part of the cerebrum; fills the middle cranial fossa
    white_matter_scale: float  # white matter = cerebrum shrunk by this factor
    fissure_half_width_mm: float
    deep_midline: Ellipsoid  # corpus callosum and diencephalon, not split by the fissure
    lateral_ventricle: Ellipsoid  # right one; the left is its mirror image
    third_ventricle: Ellipsoid
    basal_cistern: Ellipsoid  # CSF under the cerebrum that holds the circle of Willis
    cerebellum: Ellipsoid
    brainstem: Tube
    csf_layer_mm: float  # subarachnoid space around cerebrum and cerebellum; bone lies beyond
    brainstem_csf_mm: float  # wider around the brainstem, to hold the basilar artery
    tentorium_gap_mm: float
    brainstem_cistern_mm: float
    vessel_sheath_mm: float  # CSF around vessels that run in fissures (Sylvian, interhemispheric)


ANATOMY = HeadAnatomy(
    scalp=Ellipsoid((0.0, 0.0, -6.0), (74.0, 86.0, 64.0)),
    scalp_thickness_mm=3.0,
    skull_thickness_mm=5.0,
    cerebrum=Ellipsoid((0.0, 3.0, 8.0), (58.0, 68.0, 36.0)),
    temporal_lobe=Ellipsoid((38.0, 10.0, -16.0), (20.0, 32.0, 15.0)),
    white_matter_scale=0.78,
    fissure_half_width_mm=2.5,
    deep_midline=Ellipsoid((0.0, 2.0, 4.0), (1e6, 46.0, 20.0)),
    lateral_ventricle=Ellipsoid((10.0, 2.0, 12.0), (6.0, 26.0, 7.0)),
    third_ventricle=Ellipsoid((0.0, 2.0, 0.0), (2.0, 14.0, 8.0)),
    basal_cistern=Ellipsoid((0.0, 10.0, -20.0), (24.0, 22.0, 9.0)),
    cerebellum=Ellipsoid((0.0, -42.0, -30.0), (44.0, 25.0, 16.0)),
    brainstem=Tube((0.0, 2.0, -12.0), (0.0, -6.0, -74.0), 12.0, 9.0),
    csf_layer_mm=5.0,
    brainstem_csf_mm=8.0,
    tentorium_gap_mm=3.0,
    brainstem_cistern_mm=3.0,
    vessel_sheath_mm=2.5,
)

# Vessel tree nodes (template mm). A "{s}" in a name marks a bilateral node given for the right
# side; it expands to "_R" (as written) and "_L" (x mirrored).
VESSEL_NODES: dict[str, Vector] = {
    "vertebrobasilar_junction": (0.0, 14.0, -48.0),
    "superior_cerebellar_root": (0.0, 14.0, -28.0),
    "basilar_top": (0.0, 14.0, -21.0),
    "vertebral{s}": (9.0, 10.0, -64.0),
    "carotid_base{s}": (15.0, 20.0, -64.0),
    "carotid_top{s}": (12.0, 16.0, -18.0),
    "posterior_root{s}": (7.0, 11.0, -19.0),
    "anterior_root{s}": (3.0, 23.0, -17.0),
    "anterior_1{s}": (2.5, 42.0, -4.0),
    "anterior_2{s}": (2.5, 56.0, 16.0),
    "anterior_3{s}": (2.5, 42.0, 34.0),
    "anterior_4{s}": (2.5, 10.0, 40.0),
    "anterior_5{s}": (2.5, -25.0, 36.0),
    "middle_1{s}": (28.0, 16.0, -15.0),
    "middle_2{s}": (44.0, 12.0, -4.0),
    "middle_superior{s}": (50.0, 24.0, 16.0),
    "middle_frontal{s}": (44.0, 42.0, 26.0),
    "middle_posterior{s}": (52.0, -14.0, 12.0),
    "middle_parietal{s}": (42.0, -34.0, 26.0),
    "middle_inferior{s}": (54.0, -4.0, -10.0),
    "posterior_1{s}": (18.0, 0.0, -18.0),
    "posterior_2{s}": (24.0, -28.0, -12.0),
    "posterior_3{s}": (16.0, -52.0, -2.0),
    "posterior_4{s}": (10.0, -60.0, 4.0),
    "cerebellar_1{s}": (14.0, 0.0, -26.0),
    "cerebellar_2{s}": (22.0, -26.0, -20.0),
    "cerebellar_3{s}": (14.0, -46.0, -14.0),
}


@dataclass(frozen=True)
class VesselEdge:
    """One vessel between two named nodes; `sheathed` vessels run in a CSF-filled fissure."""

    start: str
    end: str
    radius_start_mm: float
    radius_end_mm: float
    sheathed: bool = False


VESSEL_EDGES: tuple[VesselEdge, ...] = (
    VesselEdge("vertebral{s}", "vertebrobasilar_junction", 2.2, 2.2),
    VesselEdge("vertebrobasilar_junction", "superior_cerebellar_root", 3.0, 2.8),
    VesselEdge("superior_cerebellar_root", "basilar_top", 2.8, 2.6),
    VesselEdge("carotid_base{s}", "carotid_top{s}", 3.2, 3.0),
    # Circle of Willis: P1, posterior communicating, A1 and the anterior communicating artery.
    VesselEdge("basilar_top", "posterior_root{s}", 2.2, 2.0),
    VesselEdge("posterior_root{s}", "carotid_top{s}", 1.4, 1.4),
    VesselEdge("carotid_top{s}", "anterior_root{s}", 2.0, 1.8),
    VesselEdge("anterior_root_R", "anterior_root_L", 1.4, 1.4),
    # Anterior cerebral arteries arch over the corpus callosum inside the midline fissure.
    VesselEdge("anterior_root{s}", "anterior_1{s}", 1.8, 1.7, sheathed=True),
    VesselEdge("anterior_1{s}", "anterior_2{s}", 1.7, 1.6, sheathed=True),
    VesselEdge("anterior_2{s}", "anterior_3{s}", 1.6, 1.4, sheathed=True),
    VesselEdge("anterior_3{s}", "anterior_4{s}", 1.4, 1.2, sheathed=True),
    VesselEdge("anterior_4{s}", "anterior_5{s}", 1.2, 1.0, sheathed=True),
    # Middle cerebral arteries run laterally in the Sylvian fissure, then fan out over the cortex.
    VesselEdge("carotid_top{s}", "middle_1{s}", 2.4, 2.2, sheathed=True),
    VesselEdge("middle_1{s}", "middle_2{s}", 2.2, 2.0, sheathed=True),
    VesselEdge("middle_2{s}", "middle_superior{s}", 1.6, 1.3),
    VesselEdge("middle_superior{s}", "middle_frontal{s}", 1.3, 1.0),
    VesselEdge("middle_2{s}", "middle_posterior{s}", 1.6, 1.3),
    VesselEdge("middle_posterior{s}", "middle_parietal{s}", 1.3, 1.0),
    VesselEdge("middle_2{s}", "middle_inferior{s}", 1.4, 1.1),
    # Posterior cerebral arteries wind around the brainstem towards the occipital lobe.
    VesselEdge("posterior_root{s}", "posterior_1{s}", 2.0, 1.8),
    VesselEdge("posterior_1{s}", "posterior_2{s}", 1.8, 1.5),
    VesselEdge("posterior_2{s}", "posterior_3{s}", 1.5, 1.2),
    VesselEdge("posterior_3{s}", "posterior_4{s}", 1.2, 1.0),
    # Superior cerebellar arteries run over the cerebellum under the tentorium.
    VesselEdge("superior_cerebellar_root", "cerebellar_1{s}", 1.4, 1.3),
    VesselEdge("cerebellar_1{s}", "cerebellar_2{s}", 1.3, 1.1),
    VesselEdge("cerebellar_2{s}", "cerebellar_3{s}", 1.1, 1.0),
)

# Distal nodes that sprout a few random twigs into the cortex, so every tree branches differently.
TWIG_SOURCES: tuple[str, ...] = (
    "middle_frontal{s}",
    "middle_parietal{s}",
    "middle_inferior{s}",
    "anterior_3{s}",
    "posterior_4{s}",
)


@dataclass(frozen=True)
class SubjectVariability:
    """How much subjects differ from the template and from each other."""

    max_rotation_deg: float = 8.0
    max_scale_change: float = 0.08
    max_translation_mm: float = 6.0
    elastic_std_mm: float = 2.5
    elastic_control_points: int = 5
    surface_roughness: float = 0.04  # std of the perturbation of the ellipsoid level (unitless)
    roughness_control_points: int = 10
    vessel_node_jitter_mm: float = 2.5
    vessel_leaf_length_range: tuple[float, float] = (0.8, 1.25)
    vessel_radius_log_std: float = 0.1
    vessel_max_radius_mm: float = 4.0
    vessel_tortuosity_mm: float = 1.2  # std of the sideways offset of intermediate points
    vessel_subsegment_mm: float = 12.0
    twigs_per_source: tuple[int, int] = (2, 3)
    twig_length_mm: tuple[float, float] = (12.0, 24.0)
    twig_radius_mm: float = 1.0
    twig_direction_spread: float = 0.7
    twig_max_cerebrum_level: float = 0.8  # keep twig ends inside the cortex, not in the CSF
    intensity_jitter: float = 0.04
    noise_std_range: tuple[float, float] = (0.015, 0.035)
    bias_log_std: float = 0.1
    bias_control_points: int = 4


VARIABILITY = SubjectVariability()


@dataclass(frozen=True)
class ContrastModel:
    """Intensity model of one contrast.

    Attributes:
        tissue: mean intensity of each `Tissue`, before jitter, bias and noise.
        vessel_darkening: fraction of the tissue signal a vessel removes, per tissue (flow void).
        vessel_brightness: intensity of a vessel of radius `vessel_reference_radius_mm` or more;
            thinner vessels fade linearly to `vessel_min_brightness` of it (inflow saturation).
    """

    tissue: Mapping[Tissue, float]
    vessel_darkening: Mapping[Tissue, float]
    vessel_brightness: float = 0.0
    vessel_min_brightness: float = 1.0
    vessel_reference_radius_mm: float = 3.0

    def __post_init__(self) -> None:
        # Read-only tables, so that no caller can change the module's models by accident.
        for name in ("tissue", "vessel_darkening"):
            table = MappingProxyType(dict(getattr(self, name)))
            if set(table) != set(Tissue):
                raise ValueError(f"{name} needs a value for every Tissue, got {sorted(table)}")
            object.__setattr__(self, name, table)


# Heavy T2 (MR cisternography): CSF brightest, grey matter above white matter, flowing blood is a
# void that is stark in CSF but faint in parenchyma, whose own signal is already low.
CISTERNOGRAPHY = ContrastModel(
    tissue={
        Tissue.BACKGROUND: 0.0,
        Tissue.SCALP: 0.35,
        Tissue.SKULL: 0.05,
        Tissue.CSF: 1.0,
        Tissue.GREY_MATTER: 0.38,
        Tissue.WHITE_MATTER: 0.26,
        Tissue.CEREBELLUM: 0.34,
        Tissue.BRAINSTEM: 0.28,
    },
    vessel_darkening={
        Tissue.BACKGROUND: 0.0,
        Tissue.SCALP: 0.5,
        Tissue.SKULL: 0.0,
        Tissue.CSF: 0.92,
        Tissue.GREY_MATTER: 0.2,
        Tissue.WHITE_MATTER: 0.2,
        Tissue.CEREBELLUM: 0.2,
        Tissue.BRAINSTEM: 0.2,
    },
)

# Vessel-enhanced (time-of-flight-like) angiography: static tissue saturated, fat a little
# brighter than brain, CSF darkest, inflowing blood brightest.
ANGIOGRAPHY = ContrastModel(
    tissue={
        Tissue.BACKGROUND: 0.0,
        Tissue.SCALP: 0.3,
        Tissue.SKULL: 0.03,
        Tissue.CSF: 0.08,
        Tissue.GREY_MATTER: 0.17,
        Tissue.WHITE_MATTER: 0.19,
        Tissue.CEREBELLUM: 0.17,
        Tissue.BRAINSTEM: 0.18,
    },
    vessel_darkening=dict.fromkeys(Tissue, 0.0),
    vessel_brightness=1.0,
    vessel_min_brightness=0.6,
)

CONTRASTS: dict[str, ContrastModel] = {
    "cisternography": CISTERNOGRAPHY,
    "angiography": ANGIOGRAPHY,
}


@dataclass(frozen=True)
class VesselTree:
    """Straight tube segments of one subject's vessel tree, as arrays over segments."""

    starts: np.ndarray  # (K, 3) mm
    ends: np.ndarray  # (K, 3) mm
    radius_starts: np.ndarray  # (K,) mm
    radius_ends: np.ndarray  # (K,) mm
    sheathed: np.ndarray  # (K,) bool


@dataclass(frozen=True)
class VesselField:
    """Per-voxel distances to the vessel tree (mm, +inf far from it).

    Attributes:
        surface: distance to the nearest vessel wall, negative inside a vessel.
        radius: radius of that nearest vessel.
        sheath: like `surface` but over sheathed vessels only.
    """

    surface: np.ndarray
    radius: np.ndarray
    sheath: np.ndarray


# ----------------------------------------------------------------------------- validation


def _validated_geometry(
    shape: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Check and normalise a grid; raise ValueError naming the bad argument."""
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"shape and spacing need 3 values each, got {shape!r} and {spacing!r}")
    if any(int(n) != n or n < MIN_AXIS_VOXELS for n in shape):
        raise ValueError(
            f"shape must be 3 integers of at least {MIN_AXIS_VOXELS} voxels, got {shape!r}"
        )
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be 3 positive finite numbers (mm), got {spacing!r}")
    nx, ny, nz = (int(n) for n in shape)
    sx, sy, sz = (float(s) for s in spacing)
    return (nx, ny, nz), (sx, sy, sz)


# ----------------------------------------------------------------------------- geometry


def phantom_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Return the 4x4 RAS+ voxel-to-world affine: diagonal `spacing`, volume centre at (0, 0, 0)."""
    shape, spacing = _validated_geometry(shape, spacing)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)
    return affine


def _template_scale(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """Template mm per world mm, chosen so the template box just fits inside the field of view."""
    half_fov = np.array(shape) * np.array(spacing) / 2
    return float(np.max(TEMPLATE_HALF_EXTENT_MM / half_fov))


def _smooth_random_field(
    rng: np.random.Generator, shape: tuple[int, ...], n_control: int
) -> np.ndarray:
    """Return a smooth zero-mean, unit-std random field of `shape` (float32).

    Random coefficients on a coarse lattice are interpolated with separable Gaussian kernels:
    three small matrix products, far cheaper than filtering or zooming a full-size volume.
    """
    field = rng.standard_normal((n_control,) * len(shape))
    centres = np.linspace(0.0, 1.0, n_control)
    for n in shape:
        positions = (np.arange(n) + 0.5) / n
        kernel = np.exp(-0.5 * ((positions[:, None] - centres[None]) * (n_control - 1)) ** 2)
        kernel /= kernel.sum(axis=1, keepdims=True)
        # Contracting the leading axis and appending the new one cycles through all three axes.
        field = np.tensordot(field, kernel, axes=(0, 1))
    field = field.astype(np.float32)
    return (field - field.mean()) / field.std()


def _random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """Return a rotation matrix composed of uniform rotations about x, y and z."""
    rotation = np.eye(3)
    for axis, angle in enumerate(np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = r @ rotation
    return rotation


def _subject_coordinates(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    variability: SubjectVariability,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Return the template coordinates (mm) seen by each voxel, and the voxel size in template mm.

    The subject's head is the template moved by a random affine and warped by a smooth elastic
    field; evaluating the template at the inverse-mapped voxel positions draws that head.
    """
    voxel_mm = _template_scale(shape, spacing) * np.array(spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel_mm, strict=True)]
    grid = np.meshgrid(*[a.astype(np.float32) for a in axes], indexing="ij")

    rotation = _random_rotation(rng, variability.max_rotation_deg)
    scale = 1 + rng.uniform(-variability.max_scale_change, variability.max_scale_change, size=3)
    translation = rng.uniform(-variability.max_translation_mm, variability.max_translation_mm, 3)
    # Forward map: template -> subject is p -> rotation @ (scale * p) + translation; invert it.
    # Written out element-wise rather than as a matrix product, which BLAS may round differently
    # from one CPU to another.
    inverse = np.diag(1 / scale) @ rotation.T
    shifted = [g - np.float32(t) for g, t in zip(grid, translation, strict=True)]
    coords = []
    for row in inverse:
        elastic = _smooth_random_field(rng, shape, variability.elastic_control_points)
        template = sum(np.float32(w) * g for w, g in zip(row, shifted, strict=True))
        coords.append(template + np.float32(variability.elastic_std_mm) * elastic)
    return coords, voxel_mm


# ----------------------------------------------------------------------------- tubes


def _tube_gaps(
    coords: Sequence[np.ndarray],
    starts: np.ndarray,
    ends: np.ndarray,
    radius_starts: np.ndarray,
    radius_ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (distance to wall, local radius) of points to K tapered tubes, each (..., K).

    `coords` holds the x, y and z arrays of the points; working per component avoids numpy's
    slow reductions over a length-3 axis.
    """
    direction = ends - starts
    length2 = np.maximum((direction**2).sum(axis=1), 1e-12)
    relative = [c[..., None] - starts[:, axis] for axis, c in enumerate(coords)]
    t = sum(r * direction[:, axis] for axis, r in enumerate(relative)) / length2
    t = np.clip(t, 0.0, 1.0)
    distance2 = sum((r - t * direction[:, axis]) ** 2 for axis, r in enumerate(relative))
    radius = radius_starts + t * (radius_ends - radius_starts)
    return np.sqrt(distance2) - radius, radius


def _tube_distance(coords: Sequence[np.ndarray], tube: Tube) -> np.ndarray:
    """Return the distance (mm) from every voxel to the wall of one tube, negative inside."""
    gap, _ = _tube_gaps(
        coords,
        np.array([tube.start], dtype=np.float32),
        np.array([tube.end], dtype=np.float32),
        np.float32(tube.radius_start),
        np.float32(tube.radius_end),
    )
    return gap[..., 0]


def _rasterise_vessels(
    coords: Sequence[np.ndarray], tree: VesselTree, reach_mm: float
) -> VesselField:
    """Return the distances from each voxel to the vessel tree, computed block by block.

    Only tubes whose bounding box comes within `reach_mm` of a block's coordinates are tested
    against it, which keeps the cost near the number of voxels close to a vessel.
    """
    shape = coords[0].shape
    surface = np.full(shape, np.inf, dtype=np.float32)
    radius = np.zeros(shape, dtype=np.float32)
    sheath = np.full(shape, np.inf, dtype=np.float32)
    max_radius = np.maximum(tree.radius_starts, tree.radius_ends)[:, None]
    tube_lo = np.minimum(tree.starts, tree.ends) - max_radius - reach_mm
    tube_hi = np.maximum(tree.starts, tree.ends) + max_radius + reach_mm

    corners = [range(0, n, VESSEL_BLOCK_VOXELS) for n in shape]
    for corner in itertools.product(*corners):
        block = tuple(slice(c, c + VESSEL_BLOCK_VOXELS) for c in corner)
        points = [c[block].ravel() for c in coords]
        lo = np.array([p.min() for p in points])
        hi = np.array([p.max() for p in points])
        near = np.all((tube_lo <= hi) & (tube_hi >= lo), axis=1)
        if not near.any():
            continue
        gap, local_radius = _tube_gaps(
            points,
            tree.starts[near],
            tree.ends[near],
            tree.radius_starts[near],
            tree.radius_ends[near],
        )
        nearest = gap.argmin(axis=1)
        rows = np.arange(len(points[0]))
        block_shape = surface[block].shape
        surface[block] = gap[rows, nearest].reshape(block_shape)
        radius[block] = local_radius[rows, nearest].reshape(block_shape)
        sheath_gap = np.where(tree.sheathed[near][None], gap, np.inf).min(axis=1)
        sheath[block] = sheath_gap.reshape(block_shape)
    return VesselField(surface=surface, radius=radius, sheath=sheath)


# ----------------------------------------------------------------------------- vessel tree


def _expand_sides(name: str) -> list[tuple[str, float]]:
    """Return [(name, x sign)] for a node name, two entries if it holds the side marker."""
    if "{s}" not in name:
        return [(name, 1.0)]
    return [(name.format(s="_R"), 1.0), (name.format(s="_L"), -1.0)]


def _template_tree() -> tuple[dict[str, np.ndarray], list[VesselEdge]]:
    """Return the template nodes and edges with bilateral names expanded to both sides."""
    nodes = {}
    for name, (x, y, z) in VESSEL_NODES.items():
        for side_name, sign in _expand_sides(name):
            nodes[side_name] = np.array([sign * x, y, z])
    edges = []
    for edge in VESSEL_EDGES:
        if "{s}" not in edge.start + edge.end:
            edges.append(edge)
            continue
        for suffix in ("_R", "_L"):
            edges.append(
                VesselEdge(
                    edge.start.format(s=suffix),
                    edge.end.format(s=suffix),
                    edge.radius_start_mm,
                    edge.radius_end_mm,
                    edge.sheathed,
                )
            )
    return nodes, edges


def _jitter_nodes(
    rng: np.random.Generator,
    nodes: dict[str, np.ndarray],
    edges: list[VesselEdge],
    variability: SubjectVariability,
) -> dict[str, np.ndarray]:
    """Move every node a little and stretch or shrink the terminal branches."""
    moved = {
        name: position + rng.normal(0.0, variability.vessel_node_jitter_mm, 3)
        for name, position in nodes.items()
    }
    sources = {edge.start for edge in edges}
    for edge in edges:
        if edge.end not in sources:  # a leaf: scale its branch about the parent node
            factor = rng.uniform(*variability.vessel_leaf_length_range)
            moved[edge.end] = moved[edge.start] + factor * (moved[edge.end] - moved[edge.start])
    return moved


def _twig_edges(
    rng: np.random.Generator,
    nodes: dict[str, np.ndarray],
    edges: list[VesselEdge],
    variability: SubjectVariability,
    cerebrum: Ellipsoid,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return random short branches from the distal nodes, kept inside the cerebrum."""
    parent = {edge.end: edge.start for edge in edges}
    centre = np.array(cerebrum.center)
    twigs = []
    for source in TWIG_SOURCES:
        for name, _ in _expand_sides(source):
            start = nodes[name]
            heading = start - nodes[parent[name]]
            heading /= np.linalg.norm(heading)
            low, high = variability.twigs_per_source
            for _ in range(rng.integers(low, high + 1)):
                direction = heading + rng.normal(0.0, variability.twig_direction_spread, 3)
                direction /= np.linalg.norm(direction)
                end = start + rng.uniform(*variability.twig_length_mm) * direction
                # Pull the end towards the cerebrum centre until it lies inside the cortex.
                level = float(cerebrum.level(end))
                shrink = math.sqrt(variability.twig_max_cerebrum_level / max(level, 1e-9))
                shrink = min(1.0, shrink)
                twigs.append((start, centre + shrink * (end - centre)))
    return twigs


def _subdivide(
    rng: np.random.Generator,
    start: np.ndarray,
    end: np.ndarray,
    variability: SubjectVariability,
) -> list[np.ndarray]:
    """Return the points of a gently tortuous polyline from `start` to `end`."""
    n_pieces = max(1, math.ceil(np.linalg.norm(end - start) / variability.vessel_subsegment_mm))
    fractions = np.linspace(0.0, 1.0, n_pieces + 1)
    points = [start + f * (end - start) for f in fractions]
    for i in range(1, n_pieces):
        points[i] = points[i] + rng.normal(0.0, variability.vessel_tortuosity_mm, 3)
    return points


def _sample_vessel_tree(
    rng: np.random.Generator,
    variability: SubjectVariability,
    anatomy: HeadAnatomy,
    min_radius_mm: float,
) -> VesselTree:
    """Draw one subject's vessel tree: jittered template branches plus random twigs."""
    nodes, edges = _template_tree()
    nodes = _jitter_nodes(rng, nodes, edges, variability)
    branches = []  # (start, end, radius start, radius end, sheathed)
    for edge in edges:
        factor = math.exp(rng.normal(0.0, variability.vessel_radius_log_std))
        branches.append(
            (
                nodes[edge.start],
                nodes[edge.end],
                factor * edge.radius_start_mm,
                factor * edge.radius_end_mm,
                edge.sheathed,
            )
        )
    for start, end in _twig_edges(rng, nodes, edges, variability, anatomy.cerebrum):
        r = variability.twig_radius_mm
        branches.append((start, end, r, r, False))

    segments = []
    for start, end, r0, r1, sheathed in branches:
        points = _subdivide(rng, start, end, variability)
        radii = np.linspace(r0, r1, len(points))
        for i in range(len(points) - 1):
            segments.append((points[i], points[i + 1], radii[i], radii[i + 1], sheathed))

    starts, ends, r_starts, r_ends, sheathed = zip(*segments, strict=True)
    radius_range = (min_radius_mm, max(min_radius_mm, variability.vessel_max_radius_mm))
    return VesselTree(
        starts=np.array(starts, dtype=np.float32),
        ends=np.array(ends, dtype=np.float32),
        radius_starts=np.clip(r_starts, *radius_range).astype(np.float32),
        radius_ends=np.clip(r_ends, *radius_range).astype(np.float32),
        sheathed=np.array(sheathed, dtype=bool),
    )


# ----------------------------------------------------------------------------- tissues


def _hemisphere_level(
    coords: Sequence[np.ndarray], anatomy: HeadAnatomy, grow_mm: float = 0.0
) -> np.ndarray:
    """Return the ellipsoid level of the cerebrum's envelope: main ellipsoid and temporal lobes."""
    return np.minimum.reduce(
        [
            anatomy.cerebrum.level(coords, grow_mm),
            anatomy.temporal_lobe.level(coords, grow_mm),
            anatomy.temporal_lobe.mirrored().level(coords, grow_mm),
        ]
    )


def _cerebrum_mask(
    coords: Sequence[np.ndarray],
    anatomy: HeadAnatomy,
    roughness: np.ndarray,
    brainstem_distance: np.ndarray,
) -> np.ndarray:
    """Return the cerebrum: two hemispheres without the CSF spaces that surround and split them."""
    a = anatomy
    inside = _hemisphere_level(coords, a) + roughness < 1
    fissure = (np.abs(coords[0]) < a.fissure_half_width_mm) & (a.deep_midline.level(coords) >= 1)
    csf_spaces = (
        fissure
        | (a.lateral_ventricle.level(coords) < 1)
        | (a.lateral_ventricle.mirrored().level(coords) < 1)
        | (a.third_ventricle.level(coords) < 1)
        | (a.basal_cistern.level(coords) < 1)
        | (a.cerebellum.level(coords, grow_mm=a.tentorium_gap_mm) < 1)
        | (brainstem_distance < a.brainstem_cistern_mm)
    )
    return inside & ~csf_spaces


def _intracranial_mask(
    coords: Sequence[np.ndarray], anatomy: HeadAnatomy, brainstem_distance: np.ndarray
) -> np.ndarray:
    """Return the CSF-filled space: a layer around each brain part, inside the skull's table.

    Taking the union of grown brain parts, rather than one big ellipsoid, keeps the layer thin
    everywhere and leaves bone (the skull base) below the brain, as in a real head.
    """
    a = anatomy
    envelope = (
        (_hemisphere_level(coords, a, a.csf_layer_mm) < 1)
        | (a.cerebellum.level(coords, a.csf_layer_mm) < 1)
        | (a.basal_cistern.level(coords) < 1)
        | (brainstem_distance < a.brainstem_csf_mm)
    )
    inner_table = -(a.scalp_thickness_mm + a.skull_thickness_mm)
    return envelope & (a.scalp.level(coords, grow_mm=inner_table) < 1)


def _tissue_map(
    coords: Sequence[np.ndarray],
    anatomy: HeadAnatomy,
    roughness: np.ndarray,
    vessels: VesselField,
) -> np.ndarray:
    """Return the `Tissue` of every voxel; later layers override earlier ones."""
    a = anatomy
    tissue = np.full(coords[0].shape, Tissue.BACKGROUND, dtype=np.uint8)
    tissue[a.scalp.level(coords) < 1] = Tissue.SCALP
    tissue[a.scalp.level(coords, grow_mm=-a.scalp_thickness_mm) < 1] = Tissue.SKULL
    brainstem_distance = _tube_distance(coords, a.brainstem)
    intracranial = _intracranial_mask(coords, a, brainstem_distance)
    tissue[intracranial] = Tissue.CSF

    cerebrum = _cerebrum_mask(coords, a, roughness, brainstem_distance) & intracranial
    white = _hemisphere_level(coords, a) + roughness < a.white_matter_scale**2
    tissue[cerebrum] = Tissue.GREY_MATTER
    tissue[cerebrum & white] = Tissue.WHITE_MATTER
    # Vessels in the Sylvian and interhemispheric fissures are bathed in CSF.
    tissue[cerebrum & (vessels.sheath < a.vessel_sheath_mm)] = Tissue.CSF

    cerebellum = (a.cerebellum.level(coords) + roughness < 1) & intracranial
    tissue[cerebellum & (brainstem_distance >= a.brainstem_cistern_mm)] = Tissue.CEREBELLUM
    tissue[brainstem_distance < 0] = Tissue.BRAINSTEM
    return tissue


def _label_map(tissue: np.ndarray, vessels: VesselField) -> np.ndarray:
    """Return the uint8 label map; vessels override the tissue they run through."""
    label = TISSUE_LABEL[tissue]
    label[vessels.surface <= 0] = VESSEL_LABEL
    return label


# ----------------------------------------------------------------------------- intensities


def _jittered_lookup(
    rng: np.random.Generator, values: Mapping[Tissue, float], jitter: float
) -> np.ndarray:
    """Return the per-tissue intensities as a lookup table, each scaled by a few % at random."""
    table = np.array([values[t] for t in Tissue], dtype=np.float32)
    return table * (1 + rng.normal(0.0, jitter, len(table))).astype(np.float32)


def _render_contrast(
    rng: np.random.Generator,
    tissue: np.ndarray,
    vessels: VesselField,
    vessel_fraction: np.ndarray,
    model: ContrastModel,
    variability: SubjectVariability,
) -> np.ndarray:
    """Render one contrast: tissue intensities, vessels, blur, bias field and Rician noise."""
    jitter = variability.intensity_jitter
    image = _jittered_lookup(rng, model.tissue, jitter)[tissue]
    darkening = np.array([model.vessel_darkening[t] for t in Tissue], dtype=np.float32)[tissue]
    image *= 1 - vessel_fraction * darkening
    if model.vessel_brightness > 0:
        relative = np.clip(vessels.radius / model.vessel_reference_radius_mm, 0.0, 1.0)
        floor = model.vessel_min_brightness
        brightness = model.vessel_brightness * (1 + jitter * rng.standard_normal())
        vessel_signal = brightness * (floor + (1 - floor) * relative)
        image += vessel_fraction * (vessel_signal - image)
    image = ndimage.gaussian_filter(image, PSF_SIGMA_VOXELS)

    bias = _smooth_random_field(rng, tissue.shape, variability.bias_control_points)
    image *= np.exp(variability.bias_log_std * bias)
    # Magnitude images carry Rician noise: the modulus of a complex signal with Gaussian noise.
    sigma = np.float32(rng.uniform(*variability.noise_std_range))
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2)


# ----------------------------------------------------------------------------- public API


def generate_subject(
    rng: np.random.Generator,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
) -> dict[str, np.ndarray]:
    """Draw one synthetic subject.

    Args:
        rng: the subject's own generator; the same generator state gives the same subject.
        shape: grid size (x, y, z), z inferior to superior; at least 16 voxels per axis.
        spacing: voxel size in mm; the head is scaled to fit the field of view shape * spacing.

    Returns:
        {"cisternography": float32, "angiography": float32, "label": uint8}, each of `shape`.
    """
    shape, spacing = _validated_geometry(shape, spacing)
    anatomy, variability = ANATOMY, VARIABILITY
    coords, voxel_mm = _subject_coordinates(rng, shape, spacing, variability)
    roughness = variability.surface_roughness * _smooth_random_field(
        rng, shape, variability.roughness_control_points
    )
    min_radius = MIN_VESSEL_RADIUS_VOXELS * float(voxel_mm.max())
    tree = _sample_vessel_tree(rng, variability, anatomy, min_radius)
    # Partial volume reaches half a voxel beyond a wall; sheaths reach further.
    mean_voxel = float(np.prod(voxel_mm) ** (1 / 3))
    vessels = _rasterise_vessels(coords, tree, max(mean_voxel, anatomy.vessel_sheath_mm))
    tissue = _tissue_map(coords, anatomy, roughness, vessels)
    vessel_fraction = np.clip(0.5 - vessels.surface / mean_voxel, 0.0, 1.0)

    subject = {
        name: _render_contrast(rng, tissue, vessels, vessel_fraction, model, variability)
        for name, model in CONTRASTS.items()
    }
    subject["label"] = _label_map(tissue, vessels)
    return subject


def _nifti_gz_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """Return a gzipped NIfTI-1 file with scanner-space q/sform and mm units, byte-reproducible.

    A gzip header embeds a modification time; it is set to zero (and no file name is stored) so
    that the same array always gives the same bytes.
    """
    image = nib.Nifti1Image(array, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units(xyz="mm")
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def write_phantom(
    out_dir: str | Path,
    n_subjects: int,
    *,
    seed: int = 0,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a phantom cohort and its manifest.

    Layout: ``<out_dir>/phantom_000/{cisternography,angiography,label}.nii.gz`` and so on, plus
    ``<out_dir>/manifest.csv`` (columns subject, cisternography, angiography, label) with paths
    relative to the manifest's folder. Existing files are overwritten.

    Args:
        out_dir: folder to write into; created if missing.
        n_subjects: number of subjects, at least 1.
        seed: cohort seed; subject i is drawn from default_rng([seed, i]).
        shape: grid size per subject, at least 16 voxels per axis.
        spacing: voxel size in mm, positive.
        progress: called as progress(done, n_subjects) after each subject, done = 1..n.

    Returns:
        Path of the manifest CSV.

    Raises:
        ValueError: for n_subjects < 1, a non-positive spacing or an axis below 16 voxels.
    """
    if int(n_subjects) != n_subjects or n_subjects < 1:
        raise ValueError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    shape, spacing = _validated_geometry(shape, spacing)
    out_dir = Path(out_dir)
    affine = phantom_affine(shape, spacing)

    rows = []
    for index in range(n_subjects):
        subject_id = SUBJECT_ID_FORMAT.format(index)
        subject = generate_subject(np.random.default_rng([seed, index]), shape, spacing)
        (out_dir / subject_id).mkdir(parents=True, exist_ok=True)
        row = {"subject": subject_id}
        for name in (*CHANNELS, LABEL_FILE):
            relative = f"{subject_id}/{name}.nii.gz"
            (out_dir / relative).write_bytes(_nifti_gz_bytes(subject[name], affine))
            row[name] = relative
        rows.append(row)
        if progress is not None:
            progress(index + 1, n_subjects)

    manifest = out_dir / MANIFEST_NAME
    columns = ["subject", *CHANNELS, LABEL_FILE]
    pd.DataFrame(rows, columns=columns).to_csv(manifest, index=False, lineterminator="\n")
    return manifest
