"""Decoded volumes shared by the fits of one process: each settled file is read once.

With ``cache_subjects`` a fit decodes every NIfTI file of its splits once and keeps
the volumes in memory. An ablation's worker runs one fit after another on the same
cohort, so ``SharedVolumeReader`` keeps each decoded volume for the whole process,
keyed by the file's settled version (``manifest_records.settled_version``): a file
written anew, or written in the last seconds, is read again.

Fits can share a volume because none changes it: TorchIO's ``SubjectsDataset`` hands
every transform a deep copy of the subject (``tests/test_shared_volumes.py`` checks
that a fit leaves the shared volumes as the files hold them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datamodules.manifest_records import settled_version
from datamodules.process_cache import ByteBoundedCache

Reader = Callable[[str | Path], tuple[torch.Tensor, np.ndarray]]

# A phantom cohort is about 100 MB; a real one may not fit, and then its oldest reads
# leave first (each fit still holds its own split, as ``cache_subjects`` says).
CACHE_BYTES = 2 * 2**30
_volumes: ByteBoundedCache[tuple[torch.Tensor, np.ndarray]] = ByteBoundedCache(CACHE_BYTES)


class SharedVolumeReader:
    """A TorchIO ``reader`` that decodes each settled file once per process with ``reader``.

    A class rather than a closure, so that subjects holding it can be pickled to
    data-loader workers (each worker then has its own volumes). The tensor is the kept
    one, not a copy; the affine is a copy.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.name = f"{reader.__module__}.{reader.__qualname__}"

    def __call__(self, path: str | Path) -> tuple[torch.Tensor, np.ndarray]:
        version = settled_version(Path(path))
        if version is None:
            return self.reader(path)
        tensor, affine = _volumes.get_or_make((self.name, version), lambda: self.reader(path))
        return tensor, affine.copy()


def shared_volume_count() -> int:
    """How many decoded volumes this process keeps."""
    return len(_volumes)


def forget_shared_volumes() -> None:
    """Release every kept volume (the next read decodes the file again)."""
    _volumes.clear()
