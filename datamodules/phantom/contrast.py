"""Intensity models of the phantom's two contrasts and their rendering.

A heavy-T2 MR cisternography (CSF bright, parenchyma dark, vessels as flow voids) and a
co-registered vessel-enhanced angiography (vessels bright, static tissue suppressed), each with
per-subject intensity jitter, blur, a bias field and Rician noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from datamodules.phantom.anatomy import SubjectVariability, Tissue
from datamodules.phantom.geometry import smooth_random_field
from datamodules.phantom.vessels import VesselField

# The input channels (manifest columns and network inputs, in order): one per contrast.
CHANNELS: tuple[str, ...] = ("cisternography", "angiography")
# Width (voxels) of the Gaussian point-spread function that softens tissue boundaries.
PSF_SIGMA_VOXELS = 0.6


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
        Tissue.MUSCLE: 0.32,  # between white and grey matter: a distractor
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
        Tissue.MUSCLE: 0.2,
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
        Tissue.MUSCLE: 0.18,  # between grey and white matter: a distractor
    },
    vessel_darkening=dict.fromkeys(Tissue, 0.0),
    vessel_brightness=1.0,
    vessel_min_brightness=0.6,
)

# Tissues that take another's jitter instead of drawing their own: distractors stay as brain-like
# as the subject's own grey matter, and a phantom without them draws the same numbers as before.
JITTER_FOLLOWS: Mapping[Tissue, Tissue] = MappingProxyType({Tissue.MUSCLE: Tissue.GREY_MATTER})

CONTRASTS: dict[str, ContrastModel] = {
    "cisternography": CISTERNOGRAPHY,
    "angiography": ANGIOGRAPHY,
}


def _jittered_lookup(
    rng: np.random.Generator, values: Mapping[Tissue, float], jitter: float
) -> np.ndarray:
    """Return the per-tissue intensities as a lookup table, each scaled by a few % at random."""
    table = np.array([values[t] for t in Tissue], dtype=np.float32)
    own = [t for t in Tissue if t not in JITTER_FOLLOWS]
    scale = np.ones(len(table), dtype=np.float32)
    scale[own] = (1 + rng.normal(0.0, jitter, len(own))).astype(np.float32)
    for follower, leader in JITTER_FOLLOWS.items():
        scale[follower] = scale[leader]
    return table * scale


def render_contrast(
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

    bias = smooth_random_field(rng, tissue.shape, variability.bias_control_points)
    image *= np.exp(variability.bias_log_std * bias)
    # Magnitude images carry Rician noise: the modulus of a complex signal with Gaussian noise.
    sigma = np.float32(rng.uniform(*variability.noise_std_range))
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2)
