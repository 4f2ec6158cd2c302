"""Stage 1 of the pseudo-image thread: a generated channel for every subject, as a cohort.

``versaseg translate --output DIR --config ...`` reads the same configs as ``versaseg fit``
(``experiments/configs/translation.yaml`` on top of the baseline), trains
``lightning_modules.pix2pix.Pix2PixModule`` on the training subjects (validation subjects
choose the checkpoint, test subjects measure it, in the same MLflow run), and writes with
the best weights:

- ``images/<subject>_pseudo_<target>.nii.gz`` for every subject, float32, on the target's
  z-normalised scale, with the source channel's affine (qform and sform);
- ``manifest.csv`` and ``dataset.yaml`` (``datamodules.stage_output``): the loaded channels
  plus ``pseudo_<target>``, the labels and the split unchanged, so that a segmentation
  run reads the pseudo channel like any other (``--data.channels``);
- ``translation_quality.csv``: MAE, PSNR and SSIM inside the head per subject and split,
  and ``stage.json``.

Validation and test subjects' images come from a generator that never trained on them;
training subjects' are in-sample (the generator saw them), as in the report's protocol.
The MLflow run is tagged ``stage=images`` and ``stage_complete=true`` once all is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from datamodules.dataset import DatasetDescription, Translation
from datamodules.manifest import ManifestError
from datamodules.nifti import save_nifti
from datamodules.stage_output import SPLITS, write_stage_output
from experiments.cleanse import StageResult
from experiments.fit import ConfigError, parse_cli
from experiments.stage_tracking import STAGE_FILE, record_stage
from experiments.tracking import run_location
from lightning_modules.image_metrics import IMAGE_METRICS
from lightning_modules.pix2pix import Pix2PixModule

METHODS = ("pix2pix",)
QUALITY_FILE = "translation_quality.csv"


def run_stage(arguments: Sequence[str], *, method: str, output: str | Path) -> StageResult:
    """Train the generator, then write every subject's pseudo image as a cohort in ``output``.

    Args:
        arguments: ``versaseg fit`` arguments without the subcommand (configs, flags).
        method: one of `METHODS`.
        output: the folder of the new cohort.

    Raises:
        ConfigError: an unknown method, a bad argument, or a model that cannot translate
            this data (no translation pair, channels not loaded).
        ManifestError: the data is unusable, naming subject, file and problem.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown translation method {method!r}; choose one of {list(METHODS)}")
    cli = parse_cli(arguments, run=False)
    data, model, trainer = cli.datamodule, cli.model, cli.trainer
    if not isinstance(model, Pix2PixModule):
        raise ConfigError(
            "translate needs model.class_path lightning_modules.pix2pix.Pix2PixModule "
            "(experiments/configs/translation.yaml)"
        )
    data.load("fit")
    try:
        model.prepare(data)
    except ValueError as error:
        if isinstance(error, ManifestError):
            raise
        raise ConfigError(f"invalid configuration: {error}") from error
    logger = trainer.logger
    output = Path(output)
    started = time.time()
    try:
        trainer.fit(model, datamodule=data)
        # Test subjects measure the checkpoint that validation chose; it stays loaded.
        trainer.test(model, datamodule=data, ckpt_path="best")
        # Lightning moves the module back to the CPU when testing ends.
        model.to(trainer.strategy.root_device)
        images, quality = _generate(data, model, output)
        seconds = time.time() - started
        pseudo = model.pseudo_channel
        description = _description(data.description, data.channels, model.translation)
        description = description.with_channel(pseudo)
        manifest = write_stage_output(output, data.records, {}, description, images)
        quality.to_csv(output / QUALITY_FILE, index=False)
        record = {
            "method": method,
            "run_id": logger.run_id,
            "seconds": seconds,
            "source": list(model.hparams.source),
            "target": model.hparams.target,
            "pseudo_channel": pseudo,
        }
        (output / STAGE_FILE).write_text(json.dumps(record, indent=1))
        _track(logger, output, method, quality, seconds, description.channels)
    except BaseException:
        logger.finalize("failed")
        raise
    logger.finalize("success")
    print(f"Wrote {len(images)} {pseudo} images and {manifest}")
    print(run_location(logger))
    return StageResult(manifest, logger.run_id, quality)


def _generate(
    data: Any, model: Pix2PixModule, output: Path
) -> tuple[dict[str, dict[str, Path]], pd.DataFrame]:
    """Every subject's pseudo image on disk, and its quality inside the head."""
    model.eval()
    images, rows = {}, []
    source = model.hparams.source[0]
    for split in SPLITS:
        records = {record.subject: record for record in data.records.get(split, [])}
        if not records:
            continue
        for subject in data.subjects_dataset(split):
            batch = data.collate.volume([subject])
            batch["image"] = batch["image"].to(model.device)
            row, volumes = model.evaluate(batch)
            name = batch["subject"]
            affine = nib.load(records[name].channels[source]).affine
            path = output / "images" / f"{name}_{model.pseudo_channel}.nii.gz"
            values = volumes["generated"].cpu().numpy().astype(np.float32)
            images[name] = {model.pseudo_channel: save_nifti(path, values, affine)}
            rows.append({"split": split, **row})
    return images, pd.DataFrame(rows)


def _description(
    description: DatasetDescription, channels: Sequence[str], translation: Translation
) -> DatasetDescription:
    """The input description narrowed to the loaded channels, with the pair trained."""
    return DatasetDescription(
        tuple(channels),
        description.class_map,
        description.thin_structures,
        description.name,
        translation,
    )


def _track(
    logger: Any,
    output: Path,
    method: str,
    quality: pd.DataFrame,
    seconds: float,
    channels: Sequence[str],
) -> None:
    """Metrics, tags and artifacts of the stage's MLflow run."""
    means = quality.groupby("split", sort=False)[list(IMAGE_METRICS)].mean()
    metrics = {
        f"translation/{metric}_{split}": float(means.loc[split, metric])
        for split in means.index
        for metric in IMAGE_METRICS
    }
    metrics["stage/seconds"] = seconds
    metrics["stage/seconds_per_subject"] = seconds / max(len(quality), 1)
    metrics["stage/subjects"] = float(len(quality))
    logger.log_metrics(metrics, step=0)
    # The images stay in the folder (they regenerate from the logged checkpoint); the
    # run keeps what says what they are and how good.
    small = [output / name for name in ("manifest.csv", "dataset.yaml", QUALITY_FILE, STAGE_FILE)]
    record_stage(
        logger,
        output,
        stage="images",
        method_tag="translation_method",
        method=method,
        channels=channels,
        artifacts=small,
    )
