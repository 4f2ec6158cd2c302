"""Callbacks that break a run on purpose, named by dotted path from CLI tests."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException


class FailOnTrainStart(pl.Callback):
    """Raise a RuntimeError as training starts: a crashed run."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise RuntimeError("boom: deliberate failure for the tracking test")


class InterruptOnTrainStart(pl.Callback):
    """Raise KeyboardInterrupt as training starts: a run stopped by the user."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise KeyboardInterrupt


class SigtermOnTrainStart(pl.Callback):
    """Raise what Lightning raises on SIGTERM: a run stopped by the system."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise SIGTERMException
