"""The phantom's vessel tree: template branches, per-subject sampling and rasterisation.

The template tree follows the circle of Willis and the main cerebral and cerebellar arteries;
each subject jitters its nodes and radii, adds random twigs into the cortex and bends every
branch a little, then the tree is rasterised into per-voxel distances to its walls.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.phantom.anatomy import HeadAnatomy, SubjectVariability
from datamodules.phantom.shapes import Ellipsoid, Vector, tube_gaps

# Thinnest rendered vessel radius, in voxels of the largest spacing: thinner tubes would fall
# between voxel centres and break into pieces.
MIN_VESSEL_RADIUS_VOXELS = 0.6
# Edge length (voxels) of the blocks in which vessels are rasterised; only the tubes near a block
# are tested against its voxels.
VESSEL_BLOCK_VOXELS = 16


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


def rasterise_vessels(
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
        gap, local_radius = tube_gaps(
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


def sample_vessel_tree(
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
