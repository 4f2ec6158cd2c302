"""Callbacks that break a run on purpose, named by dotted path from CLI tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path

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


class KillOnSecondEpoch(pl.Callback):
    """SIGKILL this process as the second epoch starts, once (a marker file remembers)."""

    def __init__(self, marker: str = "killed.marker") -> None:
        self.marker = Path(marker)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1 and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
