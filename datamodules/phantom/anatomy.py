"""The phantom's head template: tissue classes, labels, anatomy tables and subject variability.

Every number that shapes the head lives here (the vessel tree's in
`datamodules.phantom.vessels`, the intensities in `datamodules.phantom.contrast`), so that the
anatomy can be read and tuned in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from datamodules.phantom.shapes import Ellipsoid, Tube

# Half extent (mm) of the template frame in which the anatomy below is written: the default
# 96 x 96 x 64 grid at 2 mm. Axes are RAS+ (x to the right, y anterior, z superior).
TEMPLATE_HALF_EXTENT_MM = np.array([96.0, 96.0, 64.0])


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
    # Extracranial soft tissue of brain-like intensity (eye and neck muscles): the opt-in
    # distractors. Last, so that the head's tissues keep their values.
    MUSCLE = 8


# Label of each tissue (indexed by `Tissue`); CSF, skull, scalp and muscle are background.
# Vessels (4) are not a tissue: they override this map wherever they run.
TISSUE_LABEL = np.array([0, 0, 0, 0, 1, 1, 2, 3, 0], dtype=np.uint8)
VESSEL_LABEL = 4
# Structure name of each label value of the label maps (0 is background).
CLASS_NAMES: dict[int, str] = {1: "cerebrum", 2: "cerebellum", 3: "brainstem", 4: "vessels"}


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
class DistractorShape:
    """Opt-in distractors: blobs of brain-like soft tissue outside the skull, labelled background.

    Real heads hold tissue that looks like brain in both contrasts (extraocular and neck muscles,
    soft tissue of the face) and draws scattered false positives far from the brain, which the
    plain phantom lacks. Each blob is an ellipsoid, roughened like the brain, placed at random
    where scalp or bone leaves room for it: in this phantom mostly the face, skull base and neck.
    A sheath of fluid with the CSF's signal wraps each blob, as CSF wraps the optic nerve in its
    sheath: in heavy-T2 images brain-like tissue in bright fluid is what the brain itself looks
    like, so that a network cannot reject a blob by its rim alone.
    """

    radius_mm: tuple[float, float] = (6.0, 15.0)  # longest semi-axis: a small gyrus
    aspect: tuple[float, float] = (0.6, 1.0)  # the other two semi-axes, relative to the longest
    brain_clearance_mm: float = 4.0  # from labelled tissue: false positives far from the brain
    sheath_mm: float = 4.0  # fluid around each blob; the brain's CSF layer is 5 mm
    vessel_clearance_mm: float = 2.0  # off vessels, whose label and signal would override it


DISTRACTORS = DistractorShape()
