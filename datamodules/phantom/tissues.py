"""Tissue and label maps of one subject, from the template anatomy at its coordinates.

Masks are built from outside in (scalp, skull, CSF, brain parts), each overriding the last, and
vessels override the label of whatever tissue they run through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datamodules.phantom.anatomy import TISSUE_LABEL, VESSEL_LABEL, HeadAnatomy, Tissue
from datamodules.phantom.shapes import tube_distance
from datamodules.phantom.vessels import VesselField


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


def tissue_map(
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
    brainstem_distance = tube_distance(coords, a.brainstem)
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


def label_map(tissue: np.ndarray, vessels: VesselField) -> np.ndarray:
    """Return the uint8 label map; vessels override the tissue they run through."""
    label = TISSUE_LABEL[tissue]
    label[vessels.surface <= 0] = VESSEL_LABEL
    return label
