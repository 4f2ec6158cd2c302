"""Callbacks shared by the research threads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from datamodules.contract import SegmentationData
from datamodules.labels import save_label
from datamodules.nifti import save_nifti


class NiftiPredictionWriter(BasePredictionWriter):
    """Write each predicted label map as ``<output_dir>/<subject>_label.nii.gz``.

    An image-to-image module's prediction (a ``generated`` image) is written as
    ``<output_dir>/<subject>_<channel>.nii.gz``, float32.

    Class indices are mapped back to the label values of the class map, and the
    file carries the input's affine (as qform and sform), so it overlays the
    input in ITK-SNAP or 3D Slicer.

    Args:
        output_dir: folder for the label files; created if needed.
    """

    def __init__(self, output_dir: str = "predictions") -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.written: list[Path] = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if "generated" in prediction:  # an image-to-image module: a float image
            path = save_nifti(
                self.output_dir / f"{prediction['subject']}_{prediction['channel']}.nii.gz",
                prediction["generated"].numpy().astype(np.float32),
                prediction["affine"].numpy(),
            )
            self.written.append(path)
            return
        data: SegmentationData = trainer.datamodule
        label_values = np.asarray(data.task.label_values, dtype=np.uint16)
        path = save_label(
            self.output_dir / f"{prediction['subject']}_label.nii.gz",
            label_values[prediction["prediction"].numpy()],
            prediction["affine"].numpy(),
        )
        self.written.append(path)
