"""``SegmentationModule``: supervised segmentation, the baseline every thread extends.

Training runs on patches; validation and test segment whole volumes patch by
patch (``lightning_modules.inference.predict_volume``) so that Dice, HD95 and ASSD are
measured on complete cases, the way the report's tables are. With ``postprocessing``,
each validation epoch chooses the classes whose largest connected component alone
scores at least as well (``lightning_modules.postprocessing``); the checkpoint keeps
that choice and test and predict apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from datamodules.contract import SegmentationData
from lightning_modules.distributed import gather_cases
from lightning_modules.divergence import check_finite
from lightning_modules.inference import class_indices, predict_volume
from lightning_modules.losses import WEIGHTINGS, LossWeighting, build_loss
from lightning_modules.metrics import METRICS, case_metrics, dice_per_class
from lightning_modules.networks import build_network
from lightning_modules.postprocessing import (
    RAW_SUFFIX,
    case_dice,
    changed_classes,
    choose_from_dice,
    keep_largest_component,
    with_raw_metrics,
)


class SegmentationModule(pl.LightningModule):
    """A network and a loss trained on patches, evaluated on whole volumes.

    Args:
        network: a name in ``lightning_modules.networks.NETWORKS``.
        network_options: the network's keyword arguments (depth, widths, ...).
        loss: a loss base in ``lightning_modules.losses.LOSSES``.
        loss_weighting: a weighting in ``lightning_modules.losses.WEIGHTINGS``.
        loss_options: the loss's keyword arguments.
        optimizer: builds the optimiser from the parameters.
        lr_scheduler: builds a scheduler from the optimiser, or ``None``.
        spatial_dims: 2 or 3 (linked from the data module).
        in_channels: input channels (linked from the data module).
        class_names: class index -> name, background first (linked).
        inference_patch_size: patch size for whole-volume inference; ``None``
            gives whole slices in 2D and the whole volume in 3D.
        inference_overlap: in-plane overlap of inference patches, in voxels.
        inference_batch_size: patches per forward pass at inference.
        postprocessing: choose on the validation cases which classes keep only their
            largest connected component, and apply that choice in test and predict.
    """

    def __init__(
        self,
        network: str = "unet",
        network_options: dict[str, Any] | None = None,
        loss: str = "dice_ce",
        loss_weighting: str = "none",
        loss_options: dict[str, Any] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        *,
        spatial_dims: int = 2,
        in_channels: int = 1,
        class_names: Sequence[str] = ("background", "foreground"),
        inference_patch_size: Sequence[int] | None = None,
        inference_overlap: int = 0,
        inference_batch_size: int = 32,
        postprocessing: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.class_names = tuple(class_names)
        self.network = self.new_network()
        self.loss_name, self.loss_weighting = loss, loss_weighting
        self.loss_options = dict(loss_options or {})
        self.loss: torch.nn.Module | None = None
        if not self._needs_class_frequencies():
            self.loss = build_loss(loss, loss_weighting, **self.loss_options)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.spatial_dims = spatial_dims
        self.inference_patch_size = inference_patch_size
        self.inference_overlap = inference_overlap
        self.inference_batch_size = inference_batch_size
        self.postprocessing = postprocessing
        # Class names whose largest component alone is kept, as the last validation chose.
        self.keep_largest: tuple[str, ...] = ()
        # (subject, Dice per class, Dice after keep-largest or None without post-processing)
        self._val_dice: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
        self._test_rows: list[pd.DataFrame] = []
        self.test_results: pd.DataFrame | None = None
        self.test_example: dict[str, Any] | None = None

    def _weighting(self) -> type[LossWeighting]:
        # An unknown name is reported by build_loss, with the known ones.
        return WEIGHTINGS.get(self.loss_weighting, LossWeighting)

    def _needs_class_frequencies(self) -> bool:
        return self._weighting().needs_class_frequencies and (
            "class_frequencies" not in self.loss_options
        )

    def prepare(self, data: SegmentationData) -> None:
        """Take what the loss needs from the data (class frequencies) and check the data fits.

        The training library calls it once the data is loaded, before a run
        starts, so a mismatch is a config error and not a failed run.

        Raises:
            ValueError: the data cannot feed this module's loss.
        """
        if self._weighting().needs_distance and not data.distance_maps:
            raise ValueError(
                f"loss weighting {self.loss_weighting!r} needs distance maps: set "
                "data.distance_maps: true"
            )
        if self.loss is None:
            self.loss = build_loss(
                self.loss_name,
                self.loss_weighting,
                class_frequencies=data.class_frequencies,
                **self.loss_options,
            )

    def setup(self, stage: str) -> None:
        """Prepare from the trainer's data module when a caller did not (Lightning hook)."""
        # Test and predict use no loss: a checkpoint predicts without training data.
        if stage in ("fit", "validate"):
            data: SegmentationData | None = getattr(self.trainer, "datamodule", None)
            if data is None and self.loss is None:
                raise ValueError(
                    f"loss weighting {self.loss_weighting!r} needs class_frequencies: give "
                    "them in model.loss_options or train with a data module"
                )
            if data is not None:
                self.prepare(data)

    @property
    def structures(self) -> tuple[str, ...]:
        """Foreground class names, in class-index order."""
        return self.class_names[1:]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, *spatial)`` of a patch batch ``(B, C, *spatial)``."""
        return self.network(image)

    def new_network(self) -> torch.nn.Module:
        """A freshly initialised network of this module's configuration."""
        hp = self.hparams
        return build_network(
            hp.network,
            spatial_dims=hp.spatial_dims,
            in_channels=hp.in_channels,
            out_channels=len(self.class_names),
            **(hp.network_options or {}),
        )

    def segment(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, H, W, D)`` of a whole volume ``(C, H, W, D)``."""
        return self.segment_with(self.network, image)

    def segment_with(self, network: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, H, W, D)`` of a whole volume by ``network``, patch by patch."""
        return predict_volume(
            network,
            image,
            spatial_dims=self.spatial_dims,
            patch_size=self.inference_patch_size,
            overlap=self.inference_overlap,
            batch_size=self.inference_batch_size,
        )

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss(
            logits, batch["label"], mask=batch.get("mask"), distance=batch.get("distance")
        )
        # A NaN step would poison every weight and the run would still end FINISHED.
        check_finite({"training loss": loss}, epoch=self.current_epoch, step=self.global_step)
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(logits)
        )
        return loss

    # ------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.segment(batch["image"][0])
        label = batch["label"][0]
        loss = self.loss(logits.unsqueeze(0), label.unsqueeze(0), distance=batch.get("distance"))
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=1)
        prediction, num_classes = class_indices(logits), len(self.class_names)
        if self.postprocessing:
            # Dice with and without keep-largest, not the volumes: what the choice needs
            # is small enough to keep for every case and to gather across DDP ranks.
            dice, processed = (d.cpu() for d in case_dice(prediction, label, num_classes))
        else:
            dice, processed = dice_per_class(prediction, label, num_classes).cpu(), None
        self._val_dice.append((batch["subject"], dice, processed))

    def on_validation_epoch_end(self) -> None:
        cases = gather_cases(self, self._val_dice, key=lambda case: case[0])  # all DDP ranks'
        self._val_dice.clear()
        if not cases:
            return
        raw = torch.stack([dice for _, dice, _ in cases])
        mean_dice = raw.mean(0)
        for name, value in zip(self.structures, mean_dice, strict=True):
            self.log(f"val/dice_{name}", value)
        self.log("val/dice_mean", mean_dice.mean(), prog_bar=True)
        if self.postprocessing:
            chosen = choose_from_dice(raw, torch.stack([processed for *_, processed in cases]))
            self.keep_largest = tuple(self.class_names[c] for c in chosen)
            for index, name in enumerate(self.structures, start=1):
                self.log(f"postprocessing/keep_largest_{name}", float(index in chosen))

    @property
    def applied_keep_largest(self) -> tuple[str, ...]:
        """The classes test and predict post-process: ``keep_largest``, if post-processing."""
        return self.keep_largest if self.postprocessing else ()

    def _keep_largest_classes(self) -> tuple[int, ...]:
        return tuple(self.class_names.index(name) for name in self.applied_keep_largest)

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Class indices ``(H, W, D)`` with the chosen classes cut to their largest component."""
        classes = self._keep_largest_classes()
        return keep_largest_component(prediction, classes) if classes else prediction

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The best checkpoint carries the choice made at its own validation.
        checkpoint["keep_largest"] = list(self.keep_largest)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A checkpoint from before post-processing existed has no choice: none applies.
        self.keep_largest = tuple(checkpoint.get("keep_largest", ()))

    # ------------------------------------------------------------------- test
    def on_test_epoch_start(self) -> None:
        self._test_rows.clear()
        self.test_results = None
        self.test_example = None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        image, label = batch["image"][0], batch["label"][0]
        raw = class_indices(self.segment(image)).cpu()
        prediction, label = self.postprocess(raw), label.cpu()
        options = {"class_names": self.class_names, "spacing": batch["spacing"]}
        rows = case_metrics(prediction, label, **options)
        changed = changed_classes(raw, prediction, self._keep_largest_classes())
        rows = with_raw_metrics(rows, raw, label, classes=changed, **options)
        rows.insert(0, "subject", batch["subject"])
        self._test_rows.append(rows)
        if self.test_example is None:
            self.test_example = {
                "subject": batch["subject"],
                "image": image[0].cpu(),
                "truth": label.cpu(),
                "prediction": prediction.cpu(),
                "class_names": self.class_names,
            }

    def on_test_epoch_end(self) -> None:
        rows = gather_cases(self, self._test_rows, key=lambda rows: rows["subject"].iloc[0])
        results = pd.concat(rows, ignore_index=True)
        self.test_results = results
        means = results.groupby("class", sort=False)[list(METRICS)].mean()
        for metric in METRICS:
            for name in self.structures:
                self.log(f"test/{metric}_{name}", float(means.loc[name, metric]))
        self.log("test/dice_mean", float(means["dice"].mean()))
        # Before post-processing: equal to test/hd95_<name> for a class not post-processed.
        raw_hd95 = results.groupby("class", sort=False)["hd95" + RAW_SUFFIX].mean()
        for name in self.structures:
            self.log(f"test/hd95{RAW_SUFFIX}_{name}", float(raw_hd95.loc[name]))

    # ---------------------------------------------------------------- predict
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class indices ``(H, W, D)`` of one volume, with what a writer needs."""
        prediction = self.postprocess(class_indices(self.segment(batch["image"][0])))
        return {
            "subject": batch["subject"],
            "prediction": prediction.cpu(),
            "affine": batch["affine"],
        }

    # -------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }
