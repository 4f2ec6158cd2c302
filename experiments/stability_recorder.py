"""Training curves dense enough to judge stability, and the ``stability/*`` metrics.

A short study validates a handful of times: 5 epochs give 5 whole-volume
validation points, and "std over the last quarter" is then one epoch. The
``StabilityRecorder`` therefore probes the network every few training steps on
a fixed, cheap subset of the validation cases (a few slices of each), so that a
curve has ``points`` values whatever the epoch count. The whole-volume
validation is untouched: it still picks the checkpoint.

Per probe it logs ``probe/dice_mean`` (mean foreground Dice over the subset),
``probe/train_loss`` (mean training loss since the previous probe) and
``probe/epoch`` (the step in epochs, for plotting), at the global step. When
fitting ends, ``experiments.stability.curve_stability`` of these curves gives
the run's ``stability/*`` metrics (``epochs_to_95pct`` in epochs, from the
probe's step). A module that cannot be probed (no ``segment``, or no labelled
validation cases) falls back to the per-epoch ``val/dice_mean`` and
``train/loss``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from experiments.stability import PREFIX, curve_stability
from lightning_modules.inference import class_indices
from lightning_modules.metrics import dice_per_class

PROBE_DICE = "probe/dice_mean"
PROBE_LOSS = "probe/train_loss"
PROBE_EPOCH = "probe/epoch"
EPOCHS_TO_95 = f"{PREFIX}epochs_to_95pct"


class StabilityRecorder(pl.Callback):
    """Probe a fixed validation subset every few steps; log ``stability/*`` at the end.

    Args:
        points: probes per fit, at least; the interval is the fit's total
            training steps over ``points``, rounded down (at least 1 step).
            0 turns probing off: the stability metrics then come from the
            per-epoch validation curve.
        slices_per_case: axial slices of each validation case in the subset,
            evenly spaced over the slices holding foreground. A 3D network is
            probed on a slab of the training patch's depth around their middle.
    """

    def __init__(self, points: int = 20, slices_per_case: int = 4) -> None:
        if points < 0:
            raise ValueError(f"points must be >= 0, got {points!r}")
        if slices_per_case < 1:
            raise ValueError(f"slices_per_case must be at least 1, got {slices_per_case!r}")
        self.points = points
        self.slices_per_case = slices_per_case
        self.interval = 0
        self.val_dice: list[float] = []
        self.train_loss: list[float] = []
        self.steps: list[int] = []  # the global step of each probe
        self._cases: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._losses: list[float] = []
        self._probed_step = -1

    # ------------------------------------------------------------- the subset
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_dice.clear()
        self.train_loss.clear()
        self.steps.clear()
        self._losses.clear()
        self._probed_step = -1
        self.interval = 0
        with torch.random.fork_rng(devices=[]):  # reading cases draws nothing for training
            self._cases = self._probe_cases(trainer, pl_module) if self.points else []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Only now is the training loader set up: asking for the step count
        # earlier would build it an extra time, shifting the random draws.
        if self._cases:
            self.interval = max(1, int(trainer.estimated_stepping_batches) // self.points)

    def _probe_cases(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(image, label) of each validation case, cut to the probe's slices."""
        datamodule = trainer.datamodule
        if not hasattr(pl_module, "segment") or datamodule is None:
            return []
        loader = datamodule.val_dataloader()
        dataset = getattr(loader, "dataset", None)
        if dataset is None:
            return []
        cases = []
        for index in range(len(dataset)):
            batch = loader.collate_fn([dataset[index]])
            if "label" not in batch:
                return []
            image, label = batch["image"][0], batch["label"][0]
            chosen = self._slices(label, pl_module, datamodule)
            cases.append((image[..., chosen].clone(), label[..., chosen].clone()))
        return cases

    def _slices(self, label: torch.Tensor, pl_module: Any, datamodule: Any) -> torch.Tensor:
        """Indices along the last axis: spaced foreground slices (2D) or a slab (3D)."""
        depth = label.shape[-1]
        holding = torch.nonzero(label.flatten(0, -2).amax(0) > 0).flatten()
        if holding.numel() == 0:
            holding = torch.arange(depth)
        if getattr(pl_module, "spatial_dims", 2) == 2:
            spots = torch.linspace(0, holding.numel() - 1, self.slices_per_case)
            return holding[spots.round().long()].unique()
        slab = min(depth, int(tuple(datamodule.patch_size)[-1]))
        start = min(max(int(holding.float().mean()) - slab // 2, 0), depth - slab)
        return torch.arange(start, start + slab)

    # --------------------------------------------------------------- probing
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self.interval:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(float(loss.detach()))
        # Under gradient accumulation several batches share a step: probe it once.
        step = trainer.global_step
        if step % self.interval == 0 and step != self._probed_step:
            self._probed_step = step
            self._probe(trainer, pl_module)

    def _probe(self, trainer: pl.Trainer, pl_module: Any) -> None:
        was_training = pl_module.training
        pl_module.eval()  # batch norm's running statistics stay as training left them
        # Inference's DataLoader draws a seed from torch's generator; forking it
        # keeps the training draws (sampler, augmentation) as without the probe.
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            dice = [
                dice_per_class(
                    class_indices(pl_module.segment(image.to(pl_module.device))).cpu(),
                    label,
                    len(pl_module.class_names),
                ).mean()
                for image, label in self._cases
            ]
        pl_module.train(was_training)
        self.val_dice.append(float(torch.stack(dice).mean()))
        self.steps.append(trainer.global_step)
        loss = sum(self._losses) / len(self._losses) if self._losses else float("nan")
        self.train_loss.append(loss)
        self._losses.clear()
        if trainer.logger is not None:
            epoch = trainer.global_step / max(trainer.num_training_batches, 1)
            metrics = {PROBE_DICE: self.val_dice[-1], PROBE_LOSS: loss, PROBE_EPOCH: epoch}
            trainer.logger.log_metrics(metrics, step=trainer.global_step)

    # ---------------------------------------------- the per-epoch fallback
    # on_validation_end, not _epoch_end: callbacks' epoch-end hooks run before the
    # module's, which is where val/dice_mean is logged.
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._cases or trainer.sanity_checking:
            return
        if "val/dice_mean" in trainer.callback_metrics:
            self.val_dice.append(float(trainer.callback_metrics["val/dice_mean"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._cases and "train/loss" in trainer.callback_metrics:
            self.train_loss.append(float(trainer.callback_metrics["train/loss"]))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.val_dice or trainer.logger is None:
            return
        loss = self.train_loss if len(self.train_loss) == len(self.val_dice) else None
        metrics = curve_stability(self.val_dice, loss)
        reached = metrics[EPOCHS_TO_95]
        if self.steps and reached == reached:  # not NaN: the point's step, in epochs
            per_epoch = max(trainer.num_training_batches, 1)
            metrics[EPOCHS_TO_95] = self.steps[int(reached) - 1] / per_epoch
        trainer.logger.log_metrics(metrics, step=trainer.global_step)
