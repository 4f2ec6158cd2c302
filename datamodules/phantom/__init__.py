"""Seeded synthetic multi-contrast head phantom cohort.

Writes a small cohort that looks enough like head MRI for every research thread to run end to end
without patient data: a heavy-T2 MR cisternography (CSF bright, parenchyma dark, vessels as flow
voids), a co-registered vessel-enhanced angiography (vessels bright, static tissue suppressed), a
label map with the classes of Sugino et al. (2021): cerebrum, cerebellum, brainstem and vessels,
and the cohort's dataset description (``dataset.yaml``).

The anatomy is a set of analytic shapes (ellipsoids, tapered tubes, a branching vessel tree)
written in a fixed *template* frame in millimetres; each subject evaluates them at its own
deformed coordinate grid. One module per concept:

- `shapes`: ellipsoids, tapered tubes and distances to them.
- `anatomy`: tissue classes, labels, the head template and how subjects vary.
- `geometry`: grid checks, the affine and each subject's template coordinates.
- `vessels`: the vessel tree, its per-subject sampling and rasterisation.
- `tissues`: tissue and label maps.
- `distractors`: opt-in blobs of brain-like tissue in fluid outside the skull, labelled
  background.
- `contrast`: the two contrasts' intensity models and rendering.
- `writer`: one subject's arrays, and a cohort on disk (NIfTI, manifest, description).

Example:
    >>> folder = getfixture("tmp_path")
    >>> manifest = write_phantom(folder, n_subjects=2, seed=0, shape=(16, 16, 16))
    >>> sorted(path.name for path in folder.iterdir())
    ['dataset.yaml', 'manifest.csv', 'phantom_000', 'phantom_001']
    >>> print(manifest.read_text().splitlines()[1])
    phantom_000,phantom_000/cisternography.nii.gz,phantom_000/angiography.nii.gz,phantom_000/label.nii.gz
"""

from datamodules.phantom.anatomy import CLASS_NAMES, VESSEL_LABEL
from datamodules.phantom.contrast import CHANNELS
from datamodules.phantom.geometry import DEFAULT_SHAPE, DEFAULT_SPACING, phantom_affine
from datamodules.phantom.writer import (
    DESCRIPTION,
    DISTRACTOR_KEY,
    LABEL_FILE,
    MANIFEST_NAME,
    SUBJECT_ID_FORMAT,
    generate_subject,
    write_phantom,
)

__all__ = [
    "CHANNELS",
    "CLASS_NAMES",
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "DESCRIPTION",
    "DISTRACTOR_KEY",
    "LABEL_FILE",
    "MANIFEST_NAME",
    "SUBJECT_ID_FORMAT",
    "VESSEL_LABEL",
    "generate_subject",
    "phantom_affine",
    "write_phantom",
]
