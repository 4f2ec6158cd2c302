"""A cohort from the IXI dataset (real head MRI of healthy subjects), for translation.

IXI (https://brain-development.org/ixi-dataset/, CC BY-SA 3.0) ships T1, T2, PD, MRA and
DTI volumes per subject as ``IXI<id>-<site>-<n>-<modality>.nii.gz`` files, flat or in one
folder per modality (the layout ``torchio.datasets.IXI`` downloads). `write_ixi_cohort`
turns them into a cohort of this project: ``<out>/<subject>/<channel>.nii.gz``, a
``manifest.csv`` and a ``dataset.yaml`` whose translation pair is the reference channel
(T2 by default) -> the first other channel (MRA by default).

The channels are put on the reference channel's grid by their scanner affines (TorchIO's
``Resample``, linear): they come from one session but are not registered, so motion
between the scans stays in the data.

IXI has no segmentations, and every cohort here needs a label. The label written is a
*head mask* of the reference volume (`datamodules.head_mask`), one class ``head``: a
stand-in so the cohort loads in every thread, and the region inside which translation
quality is measured. It is not an anatomical segmentation; segmentation scores on it mean
nothing.

Example:
    >>> parse_ixi_name("IXI002-Guys-0828-T2.nii.gz")
    ('IXI002-Guys-0828', 'T2')
    >>> parse_ixi_name("IXI012-HH-1211-DTI-07.nii.gz")
    ('IXI012-HH-1211', 'DTI-07')
    >>> parse_ixi_name("IXI002-Guys-0828-T2.nii") is None, parse_ixi_name("T2.nii.gz") is None
    (True, True)
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torchio as tio

from datamodules.dataset import DatasetDescription, Translation, write_description
from datamodules.head_mask import head_mask
from datamodules.manifest_records import (
    LABEL_COLUMN,
    MAX_LISTED_PROBLEMS,
    SUBJECT_COLUMN,
    ManifestError,
    describe_error,
    display_path,
)
from datamodules.nifti import save_nifti

MANIFEST_NAME = "manifest.csv"
DEFAULT_CHANNELS = ("T2", "MRA")
DEFAULT_REFERENCE = "T2"
CLASS_MAP = {1: "head"}
# IXI<id>-<site>-<n>-<modality>.nii.gz; DTI volumes carry a direction number (DTI-07).
_NAME = re.compile(r"^(IXI\d+-[A-Za-z]+-\d+)-([A-Za-z0-9]+(?:-\d+)?)\.nii\.gz$")
_GZIP_CHUNK = 1 << 22


@dataclass(frozen=True)
class IXICohort:
    """What `write_ixi_cohort` wrote and what it skipped.

    Attributes:
        manifest: path of the written ``manifest.csv``.
        subjects: IDs of the subjects written, sorted.
        unpaired: subject -> requested channels it has no file for (skipped).
        unreadable: subject -> why it was skipped, naming the file (damaged, not 3D, twice).
    """

    manifest: Path
    subjects: tuple[str, ...]
    unpaired: dict[str, list[str]]
    unreadable: dict[str, str]

    @property
    def skipped(self) -> list[str]:
        """One line per skipped subject, e.g. ``IXI012-HH-1211: unpaired, no MRA``."""
        return skipped_lines(self.unpaired, self.unreadable)


def skipped_lines(unpaired: dict[str, list[str]], unreadable: dict[str, str]) -> list[str]:
    """One line per unpaired, then per unreadable subject."""
    lines = [f"{subject}: unpaired, no {', '.join(lacks)}" for subject, lacks in unpaired.items()]
    return lines + [f"{subject}: unreadable, {why}" for subject, why in unreadable.items()]


def parse_ixi_name(name: str) -> tuple[str, str] | None:
    """Split an IXI file name into (subject ID, modality); None for any other name."""
    match = _NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


def translation_pair(channels: Sequence[str], reference: str) -> Translation:
    """The cohort's translation: reference -> the first requested channel that is not it.

    Raises:
        ValueError: channels repeat a name, lack the reference or have no other channel.
    """
    channels = tuple(channels)
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels must not repeat a name, got {list(channels)}")
    if reference not in channels:
        raise ValueError(f"reference {reference!r} is not one of the channels {list(channels)}")
    others = [channel for channel in channels if channel != reference]
    if not others:
        raise ValueError(f"channels {list(channels)} need one besides the reference {reference!r}")
    return Translation(source=(reference,), target=others[0])


def find_ixi_files(source: Path) -> dict[str, dict[str, list[Path]]]:
    """Every IXI file under ``source``, at any depth: subject -> modality -> paths."""
    found: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(source.rglob("IXI*.nii.gz")):
        parsed = parse_ixi_name(path.name)
        if parsed is not None and path.is_file():
            subject, modality = parsed
            found.setdefault(subject, {}).setdefault(modality, []).append(path)
    return found


def write_ixi_cohort(
    source: str | Path,
    out: str | Path,
    *,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    reference: str = DEFAULT_REFERENCE,
    progress: Callable[[int, int], None] | None = None,
) -> IXICohort:
    """Write the IXI subjects under ``source`` that have every channel as a cohort in ``out``.

    Each written subject has ``<channel>.nii.gz`` (float32, on the reference grid, the
    reference affine as qform and sform) and ``label.nii.gz`` (uint8 head mask of the
    reference); ``out/manifest.csv`` lists them with paths relative to ``out`` and
    ``out/dataset.yaml`` describes them. Subjects without a file for some channel
    (unpaired) or with a damaged file (unreadable) are skipped and reported.

    Args:
        source: folder holding the IXI files, flat or in subfolders.
        out: folder to write into; created if missing, files in it are overwritten.
        channels: IXI modalities to write, in manifest order.
        reference: the channel whose grid every other one is resampled onto; the
            translation source.
        progress: called as progress(done, total) after each subject that has every
            channel, total being their number.

    Raises:
        ValueError: for channels and reference that give no translation pair.
        ManifestError: ``source`` does not exist, holds no IXI file, or no subject has
            every channel readable (the message lists the skipped subjects).
    """
    channels = tuple(channels)
    translation = translation_pair(channels, reference)
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise ManifestError(f"IXI folder {source} does not exist")
    found = find_ixi_files(source)
    if not found:
        raise ManifestError(
            f"IXI folder {source} holds no IXI files (IXI<id>-<site>-<n>-<modality>.nii.gz)"
        )

    unpaired = {
        subject: missing
        for subject in sorted(found)
        if (missing := [channel for channel in channels if channel not in found[subject]])
    }
    complete = [subject for subject in sorted(found) if subject not in unpaired]
    unreadable: dict[str, str] = {}
    rows = []
    for done, subject in enumerate(complete, start=1):
        try:
            paths = {channel: _single(found[subject][channel], channel) for channel in channels}
            volumes = {channel: _read_volume(paths[channel]) for channel in channels}
        except _UnreadableError as error:
            unreadable[subject] = f"{display_path(error.path, source)}: {error.reason}"
        else:
            rows.append(_write_subject(out, subject, volumes, reference))
        if progress is not None:
            progress(done, len(complete))

    if not rows:
        raise ManifestError(_nothing_written(source, channels, found, unpaired, unreadable))
    manifest = out / MANIFEST_NAME
    columns = [SUBJECT_COLUMN, *channels, LABEL_COLUMN]
    pd.DataFrame(rows, columns=columns).to_csv(manifest, index=False, lineterminator="\n")
    write_description(out, DatasetDescription(channels, CLASS_MAP, (), "ixi", translation))
    return IXICohort(
        manifest=manifest,
        subjects=tuple(row[SUBJECT_COLUMN] for row in rows),
        unpaired=unpaired,
        unreadable=unreadable,
    )


def fetch_ixi(root: str | Path, modalities: Sequence[str] = DEFAULT_CHANNELS) -> tio.datasets.IXI:
    """Download IXI modalities into ``root/<modality>/`` with TorchIO (needs network access).

    TorchIO skips a modality whose folder exists, so remove a partly downloaded folder
    before trying again.

    Raises:
        ManifestError: the download or its check failed, or a modality is not IXI's.
    """
    try:
        return tio.datasets.IXI(root, modalities=tuple(modalities), download=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ManifestError(f"IXI download into {root} failed: {describe_error(error)}") from error


class _UnreadableError(Exception):
    """One of a subject's files cannot be used; carries the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _single(paths: list[Path], channel: str) -> Path:
    if len(paths) > 1:
        others = ", ".join(str(path) for path in paths[1:])
        raise _UnreadableError(paths[0], f"{channel} found more than once (also {others})")
    return paths[0]


def _read_volume(path: Path) -> tio.ScalarImage:
    """Read every byte of a NIfTI file; a damaged file raises `_UnreadableError`.

    nibabel reads only the bytes it needs, so a flipped byte in the gzip stream can pass
    unnoticed; reading the stream to its end checks its CRC and length first.
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(_GZIP_CHUNK):
                pass
        image = nib.load(path)
        data = image.get_fdata(dtype=np.float32)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # nibabel and gzip raise many types for a damaged file
        raise _UnreadableError(path, describe_error(error)) from error
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise _UnreadableError(path, f"not a 3D volume (shape {data.shape})")
    return tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(data)[None]), affine=affine)


def _write_subject(
    out: Path, subject: str, volumes: dict[str, tio.ScalarImage], reference: str
) -> dict[str, str]:
    """Resample onto the reference grid, write the channels and the head mask; the row."""
    target = volumes[reference]
    resample = tio.Resample(target=target, image_interpolation="linear")
    arrays = {
        channel: (image if channel == reference else resample(image)).data[0].numpy()
        for channel, image in volumes.items()
    }
    arrays[LABEL_COLUMN] = head_mask(arrays[reference]).astype(np.uint8)
    (out / subject).mkdir(parents=True, exist_ok=True)
    row = {SUBJECT_COLUMN: subject}
    for name, array in arrays.items():
        relative = f"{subject}/{name}.nii.gz"
        dtype = np.uint8 if name == LABEL_COLUMN else np.float32
        save_nifti(out / relative, array.astype(dtype), target.affine)
        row[name] = relative
    return row


def _nothing_written(
    source: Path,
    channels: tuple[str, ...],
    found: dict[str, dict[str, list[Path]]],
    unpaired: dict[str, list[str]],
    unreadable: dict[str, str],
) -> str:
    modalities = sorted({modality for files in found.values() for modality in files})
    problems = skipped_lines(unpaired, unreadable)
    lines = [
        f"IXI folder {source}: none of its {len(found)} subjects has every channel "
        f"{list(channels)} readable (modalities found: {modalities}):"
    ]
    lines += [f"  {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)
