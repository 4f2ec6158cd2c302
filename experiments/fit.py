"""Training as a library: LightningCLI's fit, validate, test and predict, raising on errors.

``run_lightning(args)`` parses a ``versaseg fit|validate|test|predict`` command
line into the shared data module, a thread's LightningModule and MLflow tracking,
and runs it. It raises ``ManifestError``, ``DatasetDescriptionError`` or
``ConfigError`` on bad input instead of printing, so that callers (the command
line, the ablation runner) decide how to report them.

``apply_profile`` places ``experiments/configs/profiles/<name>.yaml`` right after
the first ``--config``: the base config sets the method, the profile its size
and budget, later configs and flags override both.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from datamodules.brain import BrainDataModule
from datamodules.manifest import ManifestError
from experiments.input_checks import (
    UsageError,
    check_checkpoint_file,
    check_output_folder,
    parser_reason,
)
from experiments.profiles import DEFAULT_PROFILE, UnknownProfileError, profile_path
from experiments.stability_recorder import StabilityRecorder
from experiments.table_format import format_mean_std, mean_std
from experiments.tracking import (
    ConfigRecorder,
    RunRecorder,
    TrackingLogger,
    check_store,
    default_tracking_uri,
    run_location,
)
from lightning_modules.callbacks import NiftiPredictionWriter
from lightning_modules.feature_maps import FeatureMapSnapshots
from lightning_modules.memory_format import ChannelsLast
from lightning_modules.metrics import METRICS
from lightning_modules.performance import PerformanceRecorder
from lightning_modules.postprocessing import choice_text


class ConfigError(ValueError):
    """A config value that the classes it configures refused."""


class VersasegCLI(LightningCLI):
    """LightningCLI with the shared data module, linked shapes and MLflow tracking."""

    def __init__(
        self, args: Sequence[str] | None = None, *, exit_on_error: bool = True, run: bool = True
    ) -> None:
        # exit_on_error=False: a bad argument raises instead of exiting, so that a
        # caller such as the ablation runner can record it and carry on.
        parser_kwargs = {
            name: {"exit_on_error": exit_on_error}
            for name in ("fit", "validate", "test", "predict")
        }
        super().__init__(
            datamodule_class=BrainDataModule,
            subclass_mode_model=True,
            save_config_callback=ConfigRecorder,
            save_config_kwargs={"save_to_log_dir": False},
            trainer_defaults={
                "logger": {"class_path": f"{TrackingLogger.__module__}.TrackingLogger"}
            },
            parser_kwargs={"exit_on_error": exit_on_error, **parser_kwargs},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Shapes the model takes from the data are stated once, in the data config.
        for name in ("spatial_dims", "in_channels", "class_names"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/dice_mean",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}",
            }
        )
        parser.add_lightning_class_args(RunRecorder, "run_recorder")
        parser.add_lightning_class_args(StabilityRecorder, "stability_recorder")
        parser.add_lightning_class_args(NiftiPredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(FeatureMapSnapshots, "feature_maps")
        parser.add_lightning_class_args(PerformanceRecorder, "performance")
        parser.add_lightning_class_args(ChannelsLast, "channels_last")
        parser.add_argument(
            "--profile",
            type=str | None,
            default=None,
            help="the profile this config was resolved with; set by the profile file",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after fit, test the best checkpoint in the same MLflow run",
        )

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:
            if isinstance(error, (ManifestError, UsageError)):  # say what they say
                raise
            raise ConfigError(f"invalid configuration: {parser_reason(str(error))}") from error

    # Validate the manifest before Lightning starts (and before an MLflow run exists).
    def before_fit(self) -> None:
        self._check_checkpoint(required=False)
        self._check_outputs()
        self.datamodule.load("fit")
        self._check_model_data()

    def _check_outputs(self) -> None:
        """Folders written after training, and the run resumed, checked before training."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
                check_output_folder(callback.dirpath, "--checkpoint.dirpath")
        if isinstance(self.trainer.logger, TrackingLogger):
            self.trainer.logger.check_run_id()

    def before_validate(self) -> None:
        self.datamodule.load("validate")
        self._check_model_data()

    def _check_model_data(self) -> None:
        """Config mismatches (model and data, snapshot layers), reported before any run starts."""
        # A thread's LightningModule may take what it needs from the data here.
        prepare = getattr(self.model, "prepare", None)
        try:
            if prepare is not None:
                prepare(self.datamodule)
            for callback in self.trainer.callbacks:
                if isinstance(callback, FeatureMapSnapshots):
                    callback.check_model(self.model)  # layer names against the network
        except ValueError as error:
            if isinstance(error, ManifestError):
                raise
            raise ConfigError(f"invalid configuration: {error}") from error

    def before_test(self) -> None:
        self._check_checkpoint(required=False)
        if isinstance(self.trainer.logger, TrackingLogger):
            self.trainer.logger.check_run_id()
        self.datamodule.load("test")

    def before_predict(self) -> None:
        # Without trained weights every label map would come from a random network.
        self._check_checkpoint(required=True)
        writer = next(c for c in self.trainer.callbacks if isinstance(c, NiftiPredictionWriter))
        check_output_folder(writer.output_dir, "--prediction_writer.output_dir")
        self.datamodule.load("predict")
        # Prediction writes label files; it is not an experiment, so no MLflow run.
        self.trainer.loggers = []

    def _check_checkpoint(self, *, required: bool) -> None:
        """Refuse a missing ``--ckpt_path`` (where one is ``required``) or a missing file."""
        path = self.config[self.subcommand].get("ckpt_path")
        if path is None:
            if required:
                raise ConfigError(
                    f"{self.subcommand} needs --ckpt_path: the checkpoint of a trained run, "
                    "e.g. mlruns/checkpoints/<experiment id>/<run>/checkpoints/last.ckpt"
                )
            return
        if path not in ("best", "last"):
            check_checkpoint_file(path)

    def after_fit(self) -> None:
        if self.config[self.subcommand].get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")
            self.after_test()
        elif self.trainer.logger is not None and self.trainer.is_global_zero:
            print(run_location(self.trainer.logger))

    def after_test(self) -> None:
        if not self.trainer.is_global_zero:  # under DDP every rank holds the same results
            return
        results = getattr(self.model, "test_results", None)
        if results is not None and "class" in results:
            print("\nTest metrics per class (mean ± std over cases; HD95 and ASSD in mm):")
            print(summary_table(results).to_string())
            keep_largest = getattr(self.model, "applied_keep_largest", None)
            if keep_largest is not None:
                names = choice_text(keep_largest)
                print(f"Post-processing, largest connected component kept: {names}")
        elif results is not None:  # an image-to-image module: one row per case
            print("\nTest metrics per case:")
            print(results.to_string(index=False, float_format="%.4f"))
        if self.trainer.logger is not None:
            print(run_location(self.trainer.logger))

    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, NiftiPredictionWriter))
        kind = "generated images" if hasattr(self.model, "generate") else "label maps"
        print(f"Wrote {len(writer.written)} {kind} to {writer.output_dir}/")


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per-class ``mean ± std`` over cases of each metric, in class order (``mean_std``'s rule)."""
    classes = list(dict.fromkeys(results["class"]))
    table = pd.DataFrame(index=pd.Index(classes, name="class"))
    for metric in METRICS:
        cells = []
        for name in classes:
            cells.append(format_mean_std(*mean_std(results.loc[results["class"] == name, metric])))
        table[metric] = cells
    return table


def apply_profile(args: list[str]) -> list[str]:
    """Replace ``--profile NAME`` by the profile's config, placed after the first ``--config``.

    Without ``--profile`` the default profile is inserted, unless the first
    config already records one (a ``profile:`` key): configs that MLflow runs
    log are complete, and are run again exactly as they are.
    """
    profile: str | None = None
    rest: list[str] = []
    iterator = iter(args)
    for arg in iterator:
        if arg == "--profile":
            profile = next(iterator, "")
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if not rest or rest[0].startswith("-"):
        return rest  # no subcommand: let LightningCLI print its help or usage
    position, first_config = config_position(rest)
    if profile is None:
        if first_config is not None and records_profile(first_config):
            return rest
        profile = DEFAULT_PROFILE
    try:
        path = profile_path(profile)
    except UnknownProfileError as error:
        raise ConfigError(str(error)) from error
    return [*rest[:position], "--config", str(path), *rest[position:]]


def config_position(args: list[str]) -> tuple[int, str | None]:
    """Index just past the first ``--config`` (1, after the subcommand, if none) and its path."""
    for index, arg in enumerate(args):
        if arg == "--config" and index + 1 < len(args):
            return index + 2, args[index + 1]
        if arg.startswith("--config="):
            return index + 1, arg.split("=", 1)[1]
    return 1, None


def records_profile(config: str) -> bool:
    """Whether a config file names its profile (a resolved config that a run logged)."""
    try:
        content = yaml.safe_load(Path(config).read_text())
    except (OSError, ValueError, yaml.YAMLError):  # UnicodeDecodeError is a ValueError
        return False  # parse_cli reports unreadable configs
    return isinstance(content, dict) and content.get("profile") is not None


def run_lightning(args: Sequence[str]) -> None:
    """Run ``fit|validate|test|predict`` with ``args`` (profile already applied).

    Raises:
        ManifestError: the data (manifest, files or dataset description) is unusable.
        ConfigError: an argument or config value is.
    """
    parse_cli(args)


def parse_cli(args: Sequence[str], *, run: bool = True) -> VersasegCLI:
    """``VersasegCLI`` over ``args``, run as a subcommand or (``run=False``) only built.

    Raises:
        ConfigError: an argument the parser refuses.
    """
    # The CLI always passes its (profile-expanded) arguments explicitly.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
    check_files(args)
    if args and args[0] != "predict":  # before MLflow would retry an unwritable store
        check_store(default_tracking_uri())
    try:
        return VersasegCLI(list(args), exit_on_error=False, run=run)
    except argparse.ArgumentError as error:
        raise ConfigError(f"invalid configuration: {parser_reason(str(error))}") from error


def check_files(args: Sequence[str]) -> None:
    """Refuse a ``--config`` that is not text and a ``--ckpt_path`` that is not a checkpoint.

    Both are read while the command line is parsed (LightningCLI takes hyperparameters
    from the checkpoint), where they would end in a decoding or unpickling traceback.

    Raises:
        ConfigError: naming the file.
        UsageError: naming the checkpoint.
    """
    for option, value in option_values(args, ("--config", "--ckpt_path")):
        if option == "--ckpt_path":
            if value not in ("best", "last"):
                check_checkpoint_file(value)
            continue
        try:
            Path(value).read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"--config {value}: not a text YAML file ({error.reason})") from error
        except OSError:
            pass  # a missing file: jsonargparse's message names it


def option_values(args: Sequence[str], options: Sequence[str]) -> list[tuple[str, str]]:
    """``(option, value)`` of each of ``options`` in ``args``, as ``--x v`` or ``--x=v``."""
    found = []
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in options and equals:
            found.append((name, value))
        elif arg in options and index + 1 < len(args):
            found.append((arg, args[index + 1]))
    return found
