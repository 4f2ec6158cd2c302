"""A small cohort that is not the phantom: one ``t1`` channel, three other structures.

It checks that nothing assumes the phantom's channels, class names, label values
or split: label values 2, 5 and 7 (``gland``, ``duct``, ``lesion``), a thin
``duct``, labels stored as float32 (as many tools write them), no ``split``
column. With ``--t2`` it has a second contrast, ``t2`` (the duct dark, the lesion
bright), and the translation pair ``t1 -> t2`` of the pseudo-image thread. Run
``.venv/bin/python -m tests.cohort OUT [--subjects 8] [--t2]`` to write one.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import nibabel as nib
import numpy as np

from datamodules.dataset import DatasetDescription, Translation, write_description

SHAPE = (64, 64, 24)
DESCRIPTION = DatasetDescription(
    channels=("t1",),
    class_map={2: "gland", 5: "duct", 7: "lesion"},
    thin_structures=("duct",),
    name="t1-cohort",
)
# The second contrast's intensity per label value: another contrast of the same anatomy.
T2_INTENSITY = {0: 10.0, 2: 90.0, 5: 30.0, 7: 200.0}


def cohort_subject(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One subject's ``(t1, label)``: a gland with a lesion inside and a thin duct."""
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    centre = np.array(SHAPE) / 2 + rng.uniform(-3, 3, 3)
    radii = np.array([20.0, 16.0, 9.0]) * rng.uniform(0.85, 1.15, 3)
    gland = sum(((c - m) / r) ** 2 for c, m, r in zip((x, y, z), centre, radii, strict=True)) <= 1
    lesion_centre = centre + rng.uniform(-6, 6, 3) * np.array([1, 1, 0.3])
    lesion = sum((c - m) ** 2 for c, m in zip((x, y, z), lesion_centre, strict=True)) <= 16
    # A duct along x that wanders in y and z: one or two voxels thick in every slice.
    wave = centre[1] + 8 * np.sin(x / 9 + rng.uniform(0, 6.3))
    along = np.abs(x - centre[0]) < 24
    duct = (np.abs(y - wave) <= 1.0) & (np.abs(z - centre[2] - 2) <= 2) & along
    label = np.zeros(SHAPE, dtype=np.float32)
    label[gland] = 2
    label[duct] = 5
    label[lesion & gland] = 7
    intensity = {0: 20.0, 2: 120.0, 5: 220.0, 7: 60.0}
    t1 = np.vectorize(intensity.get)(label).astype(np.float32)
    t1 += rng.normal(0, 8, SHAPE).astype(np.float32)
    return t1, label


def t2_contrast(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``t2`` image of a label map: ``T2_INTENSITY`` plus noise."""
    t2 = np.vectorize(T2_INTENSITY.get)(label).astype(np.float32)
    return t2 + rng.normal(0, 6, label.shape).astype(np.float32)


def write_cohort(folder: str | Path, subjects: int = 8, *, seed: int = 0, t2: bool = False) -> Path:
    """Write ``subjects`` subjects, ``manifest.csv`` (no split column) and ``dataset.yaml``.

    ``t2`` adds the second contrast and the translation pair ``t1 -> t2``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    rows = []
    for index in range(subjects):
        name = f"case{index:02d}"
        (folder / name).mkdir(exist_ok=True)
        t1, label = cohort_subject(rng)
        volumes = {"t1": t1, **({"t2": t2_contrast(label, rng)} if t2 else {}), "label": label}
        for kind, volume in volumes.items():
            image = nib.Nifti1Image(volume, affine)
            image.set_qform(affine, code=1)
            image.set_sform(affine, code=1)
            nib.save(image, folder / name / f"{kind}.nii.gz")
        rows.append({"subject": name, **{k: f"{name}/{k}.nii.gz" for k in volumes}})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject", *volumes])
        writer.writeheader()
        writer.writerows(rows)
    description = DESCRIPTION
    if t2:
        description = DatasetDescription(
            ("t1", "t2"), DESCRIPTION.class_map, DESCRIPTION.thin_structures,
            "t1-t2-cohort", Translation(("t1",), "t2"),
        )  # fmt: skip
    write_description(folder, description)
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--t2", action="store_true", help="add a t2 contrast and t1 -> t2")
    options = parser.parse_args()
    print(write_cohort(options.out, options.subjects, t2=options.t2))
