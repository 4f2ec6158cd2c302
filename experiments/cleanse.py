"""Stage 1 of label cleansing: training labels for the training subjects, as a new cohort.

``versaseg cleanse --method METHOD --output DIR --config ...`` reads the same configs as
``versaseg fit`` (LightningCLI: data module, thread module, trainer and MLflow logger),
draws the weak labels of the training subjects and reconstructs a full label for each by
one method behind one interface:

- ``raw``: the weak label as it is (unlabelled voxels are background);
- ``nearest``, ``shape``, ``contour``: interpolation between the labelled slices
  (`datamodules.slice_interpolation`), labelled voxels kept;
- ``network``: `lightning_modules.cleansing.LabelCleansingModule`, trained on selected
  non-adjacent labelled slices, predicting every slice.

It writes one NIfTI label per training subject (the input's affine and label values),
and a manifest plus dataset description (`datamodules.stage_output`) in which training
subjects carry the new labels and validation and test subjects their clean truth, in the
same split; stage 2 trains on it by ``--data.manifest DIR/manifest.csv`` alone. The MLflow
run (experiment of the config's logger, tag ``stage=labels``) records the labels' quality
against the truth (Dice, HD95, ASSD per class), the selection, the time spent, and the
whole output folder as artifacts; ``stage_complete=true`` marks a finished stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import yaml

from datamodules.dataset import DatasetDescription
from datamodules.labels import read_label, save_label
from datamodules.manifest import ManifestError
from datamodules.slice_interpolation import interpolate
from datamodules.slice_selection import labelled_slices
from datamodules.stage_output import write_stage_output
from experiments.fit import ConfigError, VersasegCLI, parse_cli
from experiments.stage_tracking import STAGE_FILE, record_stage
from experiments.tracking import log_text, run_location
from lightning_modules.cleansing import LabelCleansingModule
from lightning_modules.metrics import METRICS, case_metrics

METHODS = ("raw", "nearest", "shape", "contour", "network")


@dataclass(frozen=True)
class StageResult:
    """Where a finished stage 1 put its cohort, and its MLflow run."""

    manifest: Path
    run_id: str
    quality: pd.DataFrame


def baseline_label(label: np.ndarray, mask: np.ndarray, method: str, axis: int) -> np.ndarray:
    """A full label from a weak one without training: ``raw`` or an interpolation.

    Labelled voxels keep their label; interpolation fills the unlabelled ones from the
    slices that hold a label.
    """
    known = np.where(mask > 0, label, 0).astype(np.int64)
    if method == "raw":
        return known
    filled = interpolate(known, labelled_slices(mask, axis), method=method, axis=axis)
    return np.where(mask > 0, known, filled)


def run_stage(arguments: Sequence[str], *, method: str, output: str | Path) -> StageResult:
    """Reconstruct the training labels by ``method`` and write them as a cohort in ``output``.

    Args:
        arguments: ``versaseg fit`` arguments without the subcommand (configs, flags).
        method: one of `METHODS`.
        output: the folder of the new cohort.

    Raises:
        ConfigError: an unknown method, a bad argument or a config the classes refuse.
        ManifestError: the data, its weak labels or the selection cannot apply, naming
            the subject and the problem.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown cleansing method {method!r}; choose one of {list(METHODS)}")
    cli = parse_cli(arguments, run=False)
    data, model, trainer = cli.datamodule, cli.model, cli.trainer
    data.load("fit")
    if data.weak is None:
        raise ConfigError("cleanse needs weak labels to start from: set data.weak_labels")
    if method == "network" and not isinstance(model, LabelCleansingModule):
        raise ConfigError(
            "method 'network' needs model.class_path "
            "lightning_modules.cleansing.LabelCleansingModule (experiments/configs/cleansing.yaml)"
        )
    axis = model.selection.axis if isinstance(model, LabelCleansingModule) else 2
    logger = trainer.logger
    output = Path(output)
    started = time.time()
    try:
        if method == "network":
            _prepare(model, data)
            trainer.fit(model, datamodule=data)
        labels = _reconstruct(data, model, method, axis)
        seconds = time.time() - started
        paths = _write_labels(output, data, labels)
        manifest = write_stage_output(output, data.records, paths, _task_description(data))
        quality = _quality(data, labels)
        quality.to_csv(output / "label_quality.csv", index=False)
        record = {"method": method, "run_id": logger.run_id, "seconds": seconds}
        if isinstance(model, LabelCleansingModule) and method == "network":
            record["selection"] = model.selection_record()
        (output / STAGE_FILE).write_text(json.dumps(record, indent=1))
        _track(cli, logger, output, method, quality, seconds, len(labels))
    except BaseException:
        logger.finalize("failed")
        raise
    logger.finalize("success")
    print(f"Wrote {len(labels)} {method} labels and {manifest}")
    print(run_location(logger))
    return StageResult(manifest, logger.run_id, quality)


def _prepare(model: LabelCleansingModule, data: Any) -> None:
    try:
        model.prepare(data)
    except ValueError as error:
        if isinstance(error, ManifestError):
            raise
        raise ManifestError(f"Manifest '{data.manifest}': {error}") from error


def _reconstruct(data: Any, model: Any, method: str, axis: int) -> dict[str, np.ndarray]:
    """Training subject -> its full label, in file label values."""
    labels = {}
    values = np.asarray(data.task.label_values)
    if method == "network":
        model.eval()
        for subject in data.subjects_dataset("train"):
            image = data.collate.volume([subject])["image"][0].to(model.device)
            labels[subject["subject"]] = values[model.reconstruct(subject["subject"], image).cpu()]
        return labels
    for record in data.records["train"]:
        drawn = data.weak.labels[record.subject]
        try:
            labels[record.subject] = baseline_label(drawn.label, drawn.mask, method, axis)
        except ValueError as error:
            raise ManifestError(
                f"Manifest '{data.manifest}': subject '{record.subject}': {method} "
                f"interpolation does not apply: {error}"
            ) from error
    return labels


def _write_labels(output: Path, data: Any, labels: dict[str, np.ndarray]) -> dict[str, Path]:
    paths = {}
    for record in data.records["train"]:
        affine = nib.load(record.label).affine
        path = output / "labels" / f"{record.subject}_label.nii.gz"
        paths[record.subject] = save_label(path, labels[record.subject], affine)
    return paths


def _task_description(data: Any) -> DatasetDescription:
    """The description of the new cohort: the classes the task reconstructed."""
    names = data.task.class_names
    class_map = {int(v): names[i] for i, v in enumerate(data.task.label_values) if i > 0}
    thin = tuple(n for n in data.description.thin_structures if n in class_map.values())
    return DatasetDescription(data.channels, class_map, thin, data.description.name)


def _quality(data: Any, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """Each training subject's reconstructed label against its truth, per class."""
    rows = []
    for record in data.records["train"]:
        truth = data.task.index_volume(read_label(record.label))
        cleansed = data.task.index_volume(labels[record.subject])
        spacing = nib.load(record.label).header.get_zooms()[:3]
        frame = case_metrics(
            torch.from_numpy(cleansed),
            torch.from_numpy(truth),
            class_names=data.class_names,
            spacing=spacing,
        )
        frame.insert(0, "subject", record.subject)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _track(
    cli: VersasegCLI,
    logger: Any,
    output: Path,
    method: str,
    quality: pd.DataFrame,
    seconds: float,
    subjects: int,
) -> None:
    """Metrics, tags and artifacts of the stage's MLflow run."""
    means = quality.groupby("class", sort=False)[list(METRICS)].mean()
    metrics = {
        f"labels/{metric}_{name}": float(means.loc[name, metric])
        for metric in ("dice", "hd95", "assd")
        for name in means.index
    }
    metrics["labels/dice_mean"] = float(means["dice"].mean())
    metrics["stage/seconds"] = seconds
    metrics["stage/seconds_per_subject"] = seconds / max(subjects, 1)
    metrics["stage/subjects"] = float(subjects)
    logger.log_metrics(metrics, step=0)
    if method != "network":  # a fit records the config itself (ConfigRecorder)
        log_text(logger, cli.parser.dump(cli.config, skip_none=False), "config.yaml")
        log_text(logger, yaml.safe_dump(cli.datamodule.description.to_dict()), "data/dataset.yaml")
    record_stage(
        logger,
        output,
        stage="labels",
        method_tag="cleansing_method",
        method=method,
        channels=cli.datamodule.channels,
    )
