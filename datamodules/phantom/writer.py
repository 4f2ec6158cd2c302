"""One phantom subject's arrays, and a cohort on disk: NIfTI files, manifest and description.

Subject ``i`` of a cohort is drawn from ``numpy.random.default_rng([seed, i])``, so it does not
depend on the cohort size, and the files are gzipped with a zero mtime so that the same seed
gives the same bytes on disk.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from datamodules.dataset import DatasetDescription, Translation, write_description
from datamodules.phantom.anatomy import (
    ANATOMY,
    CLASS_NAMES,
    DISTRACTORS,
    VARIABILITY,
    VESSEL_LABEL,
    Tissue,
)
from datamodules.phantom.contrast import CHANNELS, CONTRASTS, render_contrast
from datamodules.phantom.distractors import distractor_mask, distractor_rng
from datamodules.phantom.geometry import (
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    phantom_affine,
    smooth_random_field,
    subject_coordinates,
    validated_geometry,
)
from datamodules.phantom.tissues import label_map, tissue_map
from datamodules.phantom.vessels import (
    MIN_VESSEL_RADIUS_VOXELS,
    rasterise_vessels,
    sample_vessel_tree,
)

SUBJECT_ID_FORMAT = "phantom_{:03d}"
LABEL_FILE = "label"
# Key of the distractor mask in a subject drawn with distractors (not written to disk).
DISTRACTOR_KEY = "distractors"
MANIFEST_NAME = "manifest.csv"
# Gzip level for the NIfTI files: 6 is zlib's default trade-off between size and speed.
GZIP_LEVEL = 6

# What a phantom cohort holds, written beside its manifest so that every reader of the cohort
# takes channels, classes and thin structures from the data rather than from this package.
DESCRIPTION = DatasetDescription(
    channels=CHANNELS,
    class_map=CLASS_NAMES,
    thin_structures=(CLASS_NAMES[VESSEL_LABEL],),
    name="versaseg-phantom",
    # The report's pseudo-image pair: heavy-T2 cisternography -> vessel-enhanced image.
    translation=Translation(source=CHANNELS[:1], target=CHANNELS[1]),
)


def _checked_distractors(distractors: int) -> int:
    """Return the number of distractors per subject; raise ValueError unless an integer >= 0."""
    if isinstance(distractors, bool) or int(distractors) != distractors or distractors < 0:
        raise ValueError(f"distractors must be an integer of at least 0, got {distractors!r}")
    return int(distractors)


def cohort_description(distractors: int = 0) -> DatasetDescription:
    """Return the description of a cohort; its name says how many distractors it holds."""
    if not _checked_distractors(distractors):
        return DESCRIPTION
    name = f"{DESCRIPTION.name} ({distractors} distractors per subject)"
    return dataclasses.replace(DESCRIPTION, name=name)


def generate_subject(
    rng: np.random.Generator,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    *,
    distractors: int = 0,
) -> dict[str, np.ndarray]:
    """Draw one synthetic subject.

    Args:
        rng: the subject's own generator; the same generator state gives the same subject.
        shape: grid size (x, y, z), z inferior to superior; at least 16 voxels per axis.
        spacing: voxel size in mm; the head is scaled to fit the field of view shape * spacing.
        distractors: number of blobs of brain-like tissue in a sheath of fluid outside the
            skull, labelled background (`datamodules.phantom.distractors`); beyond the
            sheaths the subject is the same as without them.

    Returns:
        {"cisternography": float32, "angiography": float32, "label": uint8}, each of `shape`,
        plus the voxels of the distractors' blobs (not their sheaths) under `DISTRACTOR_KEY`
        (bool) if `distractors` > 0.
    """
    distractors = _checked_distractors(distractors)
    shape, spacing = validated_geometry(shape, spacing)
    anatomy, variability = ANATOMY, VARIABILITY
    coords, voxel_mm = subject_coordinates(rng, shape, spacing, variability)
    roughness = variability.surface_roughness * smooth_random_field(
        rng, shape, variability.roughness_control_points
    )
    min_radius = MIN_VESSEL_RADIUS_VOXELS * float(voxel_mm.max())
    tree = sample_vessel_tree(rng, variability, anatomy, min_radius)
    # Partial volume reaches half a voxel beyond a wall; sheaths reach further.
    mean_voxel = float(np.prod(voxel_mm) ** (1 / 3))
    vessels = rasterise_vessels(coords, tree, max(mean_voxel, anatomy.vessel_sheath_mm))
    tissue = tissue_map(coords, anatomy, roughness, vessels)
    blobs = None
    if distractors:
        blobs, sheaths = distractor_mask(
            distractor_rng(rng),
            coords,
            tissue,
            vessels,
            roughness,
            count=distractors,
            voxel_mm=voxel_mm,
            shape=DISTRACTORS,
        )
        tissue[sheaths] = Tissue.CSF
        tissue[blobs] = Tissue.MUSCLE
    vessel_fraction = np.clip(0.5 - vessels.surface / mean_voxel, 0.0, 1.0)

    subject = {
        name: render_contrast(rng, tissue, vessels, vessel_fraction, model, variability)
        for name, model in CONTRASTS.items()
    }
    subject["label"] = label_map(tissue, vessels)
    if blobs is not None:
        subject[DISTRACTOR_KEY] = blobs
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
    distractors: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a phantom cohort, its manifest and its dataset description.

    Layout: ``<out_dir>/phantom_000/{cisternography,angiography,label}.nii.gz`` and so on, plus
    ``<out_dir>/manifest.csv`` (columns subject, cisternography, angiography, label) with paths
    relative to the manifest's folder, and ``<out_dir>/dataset.yaml`` (`DESCRIPTION`: channels,
    class map, thin structure vessels; with distractors, its name says how many). Existing files
    are overwritten.

    Args:
        out_dir: folder to write into; created if missing.
        n_subjects: number of subjects, at least 1.
        seed: cohort seed; subject i is drawn from default_rng([seed, i]).
        shape: grid size per subject, at least 16 voxels per axis.
        spacing: voxel size in mm, positive.
        distractors: blobs of brain-like tissue in a sheath of fluid outside the skull per
            subject, labelled background; 0 (the default) writes the plain phantom.
        progress: called as progress(done, n_subjects) after each subject, done = 1..n.

    Returns:
        Path of the manifest CSV.

    Raises:
        ValueError: for n_subjects < 1, distractors < 0, a non-positive spacing or an axis below
            16 voxels.
    """
    if int(n_subjects) != n_subjects or n_subjects < 1:
        raise ValueError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    description = cohort_description(distractors)
    shape, spacing = validated_geometry(shape, spacing)
    out_dir = Path(out_dir)
    affine = phantom_affine(shape, spacing)

    rows = []
    for index in range(n_subjects):
        subject_id = SUBJECT_ID_FORMAT.format(index)
        rng = np.random.default_rng([seed, index])
        subject = generate_subject(rng, shape, spacing, distractors=distractors)
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
    write_description(out_dir, description)
    return manifest
