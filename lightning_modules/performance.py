"""Where a run's training time goes, logged with every run (``perf/*`` metrics).

Once per training epoch ``PerformanceRecorder`` logs:

- ``perf/data_wait_share``: the share of training wall time spent waiting for the next
  batch (the TorchIO queue, its workers, collation), between the end of one step and
  the start of the next. Near 0 the network is the bottleneck, and more
  ``data.num_workers`` would not help.
- ``perf/step_seconds``: the mean wall time of one step, waiting included.
- ``perf/peak_memory_gib``: the process's peak resident memory so far.
- ``perf/peak_gpu_memory_gib``: the peak memory torch allocated on the GPU, when there
  is one.

They are measured on the user's own data and machine, so the numbers in
``docs/performance.md`` can be checked.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch

GIB = 2**30


class PerformanceRecorder(pl.Callback):
    """Log the data-wait share, step time and peak memory of each training epoch."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.waiting = 0.0
        self.computing = 0.0
        self.steps = 0
        self._ready = time.perf_counter()  # when the loop last asked for a batch
        self._started = self._ready

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._started = time.perf_counter()
        self.waiting += self._started - self._ready

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._ready = time.perf_counter()
        self.computing += self._ready - self._started
        self.steps += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.steps == 0:
            return
        total = self.waiting + self.computing
        metrics = {
            "perf/data_wait_share": self.waiting / total if total > 0 else 0.0,
            "perf/step_seconds": total / self.steps,
            "perf/peak_memory_gib": peak_resident_bytes() / GIB,
        }
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            metrics["perf/peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GIB
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=False, on_epoch=True)


def peak_resident_bytes() -> int:
    """Peak resident memory of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
