"""MLflow tracking: where runs go, what each run records, and how it ends.

- ``TrackingLogger``: Lightning's MLFlowLogger with the project's default store
  (``sqlite:///mlruns/mlflow.db``, artifacts under ``mlruns/``; the
  ``MLFLOW_TRACKING_URI`` environment variable points elsewhere) and a
  ``KILLED`` status for interrupted runs.
- ``ConfigRecorder``: logs the resolved config as params and as a YAML
  artifact, with tags for thread, git commit and manifest fingerprint.
- ``RunRecorder``: logs the network's size (``model/parameters``, ``model/macs``
  of one training patch) and how weak the training labels are (``weak_label/*``),
  keeps the error on a failed run, marks interrupts KILLED, and logs the test
  outputs (per-case CSV, prediction PNG) and the post-processing they used
  (param ``postprocessing.keep_largest``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import traceback
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from datamodules.contract import SegmentationData
from experiments.input_checks import UsageError, check_output_folder
from experiments.mlflow_search import close_dead_runs, owner_tags
from experiments.mlflow_ui import NOTE_TAG, describe_experiment, ui_url
from experiments.run_notes import fit_note, with_headline

LOCAL_STORE = Path("mlruns/mlflow.db")
LOCAL_ARTIFACT_ROOT = Path("mlruns/artifacts")
MAX_PARAM_LENGTH = 500
# Network size metrics (``model/<name>``) every fit logs, for the ablation tables.
COMPLEXITY = ("parameters", "macs")
CHECKPOINT_TAG = "checkpoint_dir"
# Config entries that name files rather than settings: not params.
NOT_PARAMS = ("ckpt_path", "config")
# The classes a test kept the largest component of (lightning_modules.postprocessing).
KEEP_LARGEST_PARAM = "postprocessing.keep_largest"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the local SQLite store ``mlruns/mlflow.db``.

    The local path is made absolute because MLflow caches one database engine
    per URI string: a relative URI would keep pointing at the first folder.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{LOCAL_STORE.resolve()}"


def check_store(uri: str) -> None:
    """Refuse an MLflow store on disk that cannot be written, before MLflow retries it.

    Raises:
        UsageError: naming the store's folder and the problem.
    """
    if is_local_store(uri):
        check_output_folder(LOCAL_ARTIFACT_ROOT, "the MLflow store")
    elif uri.startswith("sqlite:///"):
        check_output_folder(Path(uri.removeprefix("sqlite:///")).parent, "the MLflow store")
    elif uri.startswith(("file:", "/")) or "://" not in uri:
        check_output_folder(uri.removeprefix("file://"), "the MLflow store")


def is_local_store(uri: str) -> bool:
    """Whether ``uri`` is this folder's own ``mlruns/`` store."""
    return uri == f"sqlite:///{LOCAL_STORE.resolve()}"


class TrackingLogger(MLFlowLogger):
    """MLFlowLogger defaulting to the project's store; one experiment per thread.

    Args:
        experiment_name: the research thread (``baseline``, ``losses``, ...);
            also recorded as the run's ``thread`` tag.
        run_name: shown in the MLflow UI; default ``<experiment>-<date>-<time>``.
        tracking_uri: ``None`` uses ``MLFLOW_TRACKING_URI`` or the local store.
        tags: extra run tags. Text, as MLflow keeps them: typed ``dict[str, str]`` so
            that the command line does not read ``0123`` as 123 or ``289e2635`` as a number.
        log_model: log checkpoints as artifacts (``True``: best and last at the end).
        run_id: continue this run, e.g. to resume an interrupted one.
    """

    def __init__(
        self,
        experiment_name: str = "baseline",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
        log_model: bool = True,
        run_id: str | None = None,
    ) -> None:
        uri = tracking_uri or default_tracking_uri()
        # MLflow's generated names come from the seeded RNG: every run would share one.
        run_name = run_name or f"{experiment_name}-{datetime.now():%Y%m%d-%H%M%S}"
        local = is_local_store(uri)
        check_store(uri)
        if local:
            LOCAL_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags={"thread": experiment_name, **owner_tags(), **(tags or {})},
            log_model=log_model,
            artifact_location=(
                str((LOCAL_ARTIFACT_ROOT / experiment_name).resolve()) if local else None
            ),
            run_id=run_id,
        )
        self._killed = False

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The MLflow client; on first use its experiment is described for the UI."""
        first = not self._initialized
        client = super().experiment
        if first and self._initialized:
            try:
                describe_experiment(client, self._experiment_id)
                # A resumed run now belongs to this process: another must not close it.
                for key, value in owner_tags().items():
                    client.set_tag(self._run_id, key, value)
                closed = close_dead_runs(client, keep=self._run_id)
            except mlflow.exceptions.MlflowException as error:  # cosmetic: never stop a run
                warnings.warn(f"could not tidy the MLflow experiment: {error}", stacklevel=2)
            else:
                if closed:
                    print(f"marked {closed} run(s) left RUNNING by a process that has gone KILLED")
        return client

    def check_run_id(self) -> None:
        """Refuse a ``run_id`` to continue that the store does not hold.

        Raises:
            UsageError: naming the run and the store.
        """
        if self._run_id is None:
            return
        try:
            self._mlflow_client.get_run(self._run_id)
        except mlflow.exceptions.MlflowException as error:
            raise UsageError(
                f"--trainer.logger.init_args.run_id {self._run_id}: no such run in the MLflow "
                f"store {self._tracking_uri}"
            ) from error

    def mark_killed(self) -> None:
        """End the run as KILLED instead of FAILED (an interrupt, not a bug)."""
        self._killed = True

    def finalize(self, status: str = "success") -> None:
        super().finalize("KILLED" if self._killed and status == "failed" else status)


class ConfigRecorder(SaveConfigCallback):
    """Record the resolved config on the run: params, tags and a YAML artifact."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        logger = trainer.logger
        if not isinstance(logger, MLFlowLogger):
            return
        config = self.parser.dump(self.config, skip_none=False, format="yaml")
        params = flatten(self.parser.dump(self.config, skip_none=False, format="json_indented"))
        # A resumed run keeps its first params (MLflow forbids changing them);
        # what the resumption changed is kept as a tag and a second config file.
        logged = logger.experiment.get_run(logger.run_id).data.params
        changed = {k: v for k, v in params.items() if k in logged and logged[k] != v}
        logger.log_hyperparams({k: v for k, v in params.items() if k not in logged})
        if changed:
            overrides = ", ".join(f"{k}={v}" for k, v in changed.items())
            logger.experiment.set_tag(logger.run_id, "resumed_with", overrides[:MAX_PARAM_LENGTH])
        tags = {"git_commit": git_commit()}
        data: SegmentationData | None = trainer.datamodule
        if data is not None:
            if data.fingerprint:
                tags["manifest_fingerprint"] = data.fingerprint
            # The description travels with the run: which channels and classes it saw.
            log_text(logger, yaml.safe_dump(data.description.to_dict()), "data/dataset.yaml")
        if not logged:  # a resumed run keeps its description
            tags[NOTE_TAG] = fit_note(
                params, logger._experiment_name, str(getattr(stage, "value", stage))
            )
        for key, value in tags.items():
            logger.experiment.set_tag(logger.run_id, key, value)
        log_text(logger, config, "config_resumed.yaml" if logged else "config.yaml")


class RunRecorder(pl.Callback):
    """Keep what a run produced or why it stopped, as MLflow artifacts and tags."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.logger is None:
            return
        checkpoints = trainer.checkpoint_callback
        if isinstance(trainer.logger, MLFlowLogger) and checkpoints is not None:
            # Where a killed run's last.ckpt lies, for the ablation runner to resume it.
            folder = str(Path(checkpoints.dirpath).resolve())
            trainer.logger.experiment.set_tag(trainer.logger.run_id, CHECKPOINT_TAG, folder)
        data: SegmentationData | None = trainer.datamodule
        if data is None:
            return
        metrics: dict[str, float] = {}
        network = getattr(pl_module, "network", None)
        if network is not None:
            from lightning_modules.networks import model_complexity

            # A module whose network reads some of the data's channels says which.
            select = getattr(pl_module, "network_input", None)
            channels = data.in_channels
            if select is not None:
                channels = select(torch.zeros(1, data.in_channels, 1)).shape[1]
            size = model_complexity(network, (1, channels, *data.patch_size))
            metrics |= {f"model/{name}": float(size[name]) for name in COMPLEXITY}
        # Weakly supervised runs: each structure's Dice of the weak training labels
        # against the truth, and the labelled fraction, so tables show the supervision.
        metrics |= {f"weak_label/{key}": value for key, value in data.weak_label_quality.items()}
        if metrics:
            trainer.logger.log_metrics(metrics, step=0)
        draws = data.weak_label_draws
        if draws and isinstance(trainer.logger, MLFlowLogger):
            # Draws are data: the weak labels replay from them without re-sampling.
            log_text(trainer.logger, json.dumps(draws), "data/weak_label_draws.json")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        if not isinstance(logger, MLFlowLogger) or trainer.global_rank != 0:
            return
        from experiments.figures import training_curves_figure

        client, run_id = logger.experiment, logger.run_id
        # MLflow's run page draws one metric per chart: this puts them side by side.
        run = client.get_run(run_id)
        names = [name for name in run.data.metrics if is_curve(name)]
        curves = {
            name: [(m.step, m.value) for m in client.get_metric_history(run_id, name)]
            for name in sorted(names)
        }
        if not curves:
            return
        figure = training_curves_figure(curves, run.info.run_name)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "training_curves.png"
            figure.savefig(path, dpi=100)
            client.log_artifact(run_id, str(path), "figures")

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        logger = trainer.logger
        if not isinstance(logger, MLFlowLogger) or logger._run_id is None:
            return
        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and isinstance(
            logger, TrackingLogger
        ):
            logger.mark_killed()
        message = f"{type(exception).__name__}: {exception}"
        logger.experiment.set_tag(logger.run_id, "error", message[:MAX_PARAM_LENGTH])
        details = "".join(traceback.format_exception(exception))
        log_text(logger, details, "error.txt")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        # Other ranks hold a dummy client: rank 0 writes the run.
        if not isinstance(logger, MLFlowLogger) or trainer.global_rank != 0:
            return
        results = getattr(pl_module, "test_results", None)
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        note = logger.experiment.get_run(logger.run_id).data.tags.get(NOTE_TAG, "")
        cases = None
        if results is not None and "subject" in results:
            cases = results["subject"].nunique()
        logger.experiment.set_tag(logger.run_id, NOTE_TAG, with_headline(note, metrics, cases))
        keep_largest = getattr(pl_module, "applied_keep_largest", None)
        if keep_largest is not None:
            record_keep_largest(logger, keep_largest)
        if results is None:
            return
        from experiments.figures import prediction_figure

        with tempfile.TemporaryDirectory() as folder:
            per_case = Path(folder) / "per_case_metrics.csv"
            results.to_csv(per_case, index=False)
            logger.experiment.log_artifact(logger.run_id, str(per_case), "metrics")
            example = getattr(pl_module, "test_example", None)
            if example is not None:
                figure_path = Path(folder) / f"prediction_{example['subject']}.png"
                prediction_figure(**example).savefig(figure_path, dpi=100)
                logger.experiment.log_artifact(logger.run_id, str(figure_path), "figures")
                # The case as arrays, so that a study's report can set runs side by side.
                arrays = Path(folder) / "example_case.npz"
                np.savez_compressed(
                    arrays,
                    subject=example["subject"],
                    image=example["image"].numpy(),
                    truth=example["truth"].numpy().astype(np.uint8),
                    prediction=example["prediction"].numpy().astype(np.uint8),
                )
                logger.experiment.log_artifact(logger.run_id, str(arrays), "figures")
        # Marks a run whose test results are complete (fit alone also ends FINISHED).
        logger.experiment.set_tag(logger.run_id, "tested", "true")


def record_keep_largest(logger: MLFlowLogger, names: tuple[str, ...]) -> None:
    """Log the post-processed classes as the param ``postprocessing.keep_largest``.

    MLflow params are immutable: a run tested again with another choice (another
    checkpoint) keeps its first param and gets the new choice as a tag of that name.
    """
    from lightning_modules.postprocessing import choice_text

    value = choice_text(names)
    logged = logger.experiment.get_run(logger.run_id).data.params.get(KEEP_LARGEST_PARAM)
    if logged is None:
        logger.experiment.log_param(logger.run_id, KEEP_LARGEST_PARAM, value)
    elif logged != value:
        logger.experiment.set_tag(logger.run_id, KEEP_LARGEST_PARAM, value)


def is_curve(metric: str) -> bool:
    """Whether a metric is a per-epoch training or validation curve worth plotting.

    >>> [is_curve(m) for m in ("train/loss", "val/dice_mean", "val/dice_cerebrum", "test/mae")]
    [True, True, False, False]
    """
    if metric.startswith("val/dice_"):
        return metric == "val/dice_mean"
    return metric.startswith(("train/", "val/"))


def flatten(config: str | Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"data.batch_size": "16", ...}`` with MLflow-sized values."""
    if isinstance(config, str):
        config = json.loads(config)
    flat: dict[str, str] = {}
    for key, value in config.items():
        if not prefix and key in NOT_PARAMS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def git_commit() -> str:
    """The source tree's commit, ``-dirty`` when it has uncommitted changes."""
    source = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def log_text(logger: MLFlowLogger, text: str, artifact_file: str) -> None:
    """Write ``text`` as an artifact file of the logger's run."""
    logger.experiment.log_text(logger.run_id, text, artifact_file)


def run_location(logger: MLFlowLogger) -> str:
    """Where to find a run: store, experiment, run id and the ``make ui`` address."""
    experiment_id, run_id = logger.experiment_id, logger.run_id
    lines = [
        f"MLflow store:  {logger._tracking_uri}",
        f"experiment:    {logger._experiment_name} (id {experiment_id})",
        f"run:           {run_id}",
    ]
    if is_local_store(logger._tracking_uri):
        address = ui_url("http://127.0.0.1:5000", experiment_id, run_id)
        lines.append(f"open it:       make ui, then {address}")
    return "\n".join(lines)
