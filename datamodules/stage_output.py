"""A stage's output cohort: a manifest and dataset description any thread trains on.

A thread that produces data for another (label cleansing's reconstructed labels, later
pix2pix's pseudo-images) writes a folder with ``manifest.csv`` and ``dataset.yaml``, so
that the next stage, or any thread, uses it by ``--data.manifest`` alone. The manifest
keeps the split of the stage that wrote it (a ``split`` column), so the next stage trains
and tests on the same subjects; paths are relative to the folder, so it moves as one
with the data it points at.

>>> from datamodules.manifest import SubjectRecord
>>> folder = getfixture("tmp_path")
>>> record = SubjectRecord("s1", {"t1": folder / "s1_t1.nii.gz"}, folder / "s1_label.nii.gz", None)
>>> manifest = write_stage_output(
...     folder / "out", {"train": [record]}, {"s1": folder / "out" / "s1_label.nii.gz"},
...     DatasetDescription(("t1",), {1: "gland"}))
>>> print(manifest.read_text().strip())
subject,t1,label,split
s1,../s1_t1.nii.gz,s1_label.nii.gz,train
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from datamodules.dataset import DatasetDescription, write_description
from datamodules.manifest import SubjectRecord

MANIFEST_NAME = "manifest.csv"
# The splits a cohort keeps, in manifest order (a data module's "predict" holds them all).
SPLITS = ("train", "val", "test")


def write_stage_output(
    folder: str | Path,
    splits: Mapping[str, Sequence[SubjectRecord]],
    labels: Mapping[str, Path],
    description: DatasetDescription,
    images: Mapping[str, Mapping[str, Path]] | None = None,
) -> Path:
    """Write ``manifest.csv`` and ``dataset.yaml`` for the subjects of ``splits``.

    Args:
        folder: the stage's output folder (created).
        splits: split name -> its records, as the stage's data module split them
            (``data.records``); only ``train``, ``val`` and ``test`` are written.
        labels: subject -> its new label file; others keep their own label.
        description: the description of the new cohort; its channels are the columns.
        images: subject -> channel -> file, for channels the stage generated (every
            subject needs one for each such channel of ``description``).

    Returns:
        The manifest's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for split in (name for name in SPLITS if name in splits):
        for record in splits[split]:
            label = labels.get(record.subject, record.label)
            paths = {**record.channels, **(images or {}).get(record.subject, {})}
            row = {"subject": record.subject}
            row |= {name: _relative(paths[name], folder) for name in description.channels}
            row |= {"label": _relative(label, folder), "split": split}
            rows.append(row)
    manifest = folder / MANIFEST_NAME
    with manifest.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_description(folder, description)
    return manifest


def _relative(path: Path | None, folder: Path) -> str:
    if path is None:
        return ""
    return os.path.relpath(Path(path).resolve(), folder.resolve())
