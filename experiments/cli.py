"""The ``versaseg`` command: LightningCLI's fit, validate, test and predict, plus ``phantom``.

Usage::

    versaseg phantom --subjects 12 --out data/phantom --seed 0
    versaseg fit --config experiments/configs/baseline.yaml [--profile smoke|quick|paper]
                 [--data.manifest CSV] [--trainer.max_epochs N] [--test_after_fit true]
    versaseg test --config ... --ckpt_path CKPT
    versaseg predict --config ... --ckpt_path CKPT --data.manifest CSV
    versaseg ui [--port 5000]
    versaseg feature-maps compare RUN_A RUN_B --layer NAME [--epoch N] [--out PNG]

``--profile`` (default ``quick``) inserts ``experiments/configs/profiles/<name>.yaml``
right after the first ``--config``, so the base config sets the method, the
profile its size and budget, and later configs and flags override both.
Every fit logs feature-map snapshots (``--feature_maps.every_n_epochs``,
``--feature_maps.layers``, ``--feature_maps.enabled false``; see
``lightning_modules.feature_maps``). Problems with the data or the config end in
one ``versaseg: error:`` message and exit status 2; ``--traceback`` shows the
full Python traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from datamodules.brain import BrainDataModule
from datamodules.manifest import ManifestError
from datamodules.phantom import write_phantom
from experiments.ablate import AblationError
from experiments.feature_maps import FeatureMapError, feature_maps_main
from experiments.profiles import DEFAULT_PROFILE, UnknownProfileError, profile_path
from experiments.tracking import (
    ConfigRecorder,
    RunRecorder,
    StabilityRecorder,
    TrackingLogger,
    default_tracking_uri,
    is_local_store,
    run_location,
)
from lightning_modules.callbacks import NiftiPredictionWriter
from lightning_modules.feature_maps import FeatureMapSnapshots
from lightning_modules.metrics import METRICS


class ConfigError(ValueError):
    """A config value that the classes it configures refused."""


class VersasegCLI(LightningCLI):
    """LightningCLI with the shared data module, linked shapes and MLflow tracking."""

    def __init__(self, args: Sequence[str] | None = None, *, exit_on_error: bool = True) -> None:
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
            if isinstance(error, ManifestError):
                raise
            raise ConfigError(f"invalid configuration: {error}") from error

    # Validate the manifest before Lightning starts (and before an MLflow run exists).
    def before_fit(self) -> None:
        self.datamodule.load("fit")
        self._check_model_data()

    def before_validate(self) -> None:
        self.datamodule.load("validate")
        self._check_model_data()

    def _check_model_data(self) -> None:
        """Config mismatches (model and data, snapshot layers), reported before any run starts."""
        check = getattr(self.model, "check_data", None)
        try:
            if check is not None:
                check(self.datamodule)
            for callback in self.trainer.callbacks:
                if isinstance(callback, FeatureMapSnapshots):
                    callback.check_model(self.model)  # layer names against the network
        except ValueError as error:
            raise ConfigError(f"invalid configuration: {error}") from error

    def before_test(self) -> None:
        self.datamodule.load("test")

    def before_predict(self) -> None:
        self.datamodule.load("predict")
        # Prediction writes label files; it is not an experiment, so no MLflow run.
        self.trainer.loggers = []

    def after_fit(self) -> None:
        if self.config[self.subcommand].get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")
            self.after_test()
        elif self.trainer.logger is not None:
            print(run_location(self.trainer.logger))

    def after_test(self) -> None:
        results = getattr(self.model, "test_results", None)
        if results is not None:
            print("\nTest metrics per class (mean ± std over cases; HD95 and ASSD in mm):")
            print(summary_table(results).to_string())
        if self.trainer.logger is not None:
            print(run_location(self.trainer.logger))

    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, NiftiPredictionWriter))
        print(f"Wrote {len(writer.written)} label maps to {writer.output_dir}/")


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per-class ``mean ± std`` over cases of each metric, in class order."""
    grouped = results.groupby("class", sort=False)[list(METRICS)]
    means, stds = grouped.mean(), grouped.std(ddof=0)
    table = pd.DataFrame(index=means.index)
    for metric in METRICS:
        table[metric] = [
            f"{m:.3f} ± {s:.3f}" for m, s in zip(means[metric], stds[metric], strict=True)
        ]
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
    except (OSError, yaml.YAMLError):
        return False  # LightningCLI reports unreadable configs itself
    return isinstance(content, dict) and content.get("profile") is not None


def phantom_main(args: Sequence[str]) -> None:
    """``versaseg phantom``: write a seeded phantom cohort and its manifest."""
    parser = argparse.ArgumentParser(
        prog="versaseg phantom",
        description="Write a synthetic head phantom cohort: NIfTI volumes plus a manifest CSV.",
    )
    parser.add_argument("--subjects", type=int, default=12, help="number of subjects")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 96, 64), metavar=("X", "Y", "Z"))
    parser.add_argument(
        "--spacing", type=float, nargs=3, default=(2.0, 2.0, 2.0), metavar=("SX", "SY", "SZ")
    )
    options = parser.parse_args(args)

    def progress(done: int, total: int) -> None:
        print(f"\rphantom: {done}/{total} subjects", end="\n" if done == total else "", flush=True)

    manifest = write_phantom(
        options.out,
        options.subjects,
        seed=options.seed,
        shape=tuple(options.shape),
        spacing=tuple(options.spacing),
        progress=progress,
    )
    print(f"phantom: manifest written to {manifest}")


def ui_main(args: Sequence[str]) -> int:
    """``versaseg ui``: serve the MLflow UI of this folder's store on 127.0.0.1."""
    parser = argparse.ArgumentParser(
        prog="versaseg ui", description="Serve the MLflow UI of the local store on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=5000)
    options = parser.parse_args(args)
    store = default_tracking_uri()
    if not is_local_store(store):
        print(f"MLFLOW_TRACKING_URI is {store}: open that server's UI instead.")
        return 0
    print(f"MLflow UI for {store} at http://127.0.0.1:{options.port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    command += ["--host", "127.0.0.1", "--port", str(options.port)]
    sys.stdout.flush()
    # Become the server, so that signals reach it and its workers directly.
    os.execv(sys.executable, command)
    return 1  # not reached


def ablate_main(args: Sequence[str], *, train: bool = True) -> int:
    """``versaseg ablate`` (train the pending variants, then tables) and ``versaseg tables``."""
    from experiments.ablate import AblationRunner, load_ablation, write_reports

    parser = argparse.ArgumentParser(
        prog="versaseg ablate" if train else "versaseg tables",
        description="Run an ablation as MLflow parent and child runs, then write its tables."
        if train
        else "Write an ablation's tables from its finished MLflow runs.",
    )
    parser.add_argument("ablation", type=Path, help="experiments/ablations/<name>.yaml")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="smoke, quick or paper")
    parser.add_argument("--data", default="data/phantom/manifest.csv", help="manifest CSV")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the file's seeds")
    if train:
        parser.add_argument("--jobs", type=int, default=1, help="variants trained side by side")
    parser.add_argument("--reports", type=Path, help="output folder (reports/<ablation>)")
    options = parser.parse_args(args)
    runner = AblationRunner(
        load_ablation(options.ablation),
        profile=options.profile,
        manifest=options.data,
        jobs=getattr(options, "jobs", 1),
        seeds=options.seeds,
        reports=options.reports,
    )
    failures = runner.run() if train else []
    try:
        report = write_reports(runner)
        print()
        print(report.read_text())
        print(f"Tables written to {report.parent}/ and logged on the ablation's parent run.")
    finally:
        if failures:
            print(f"\n{len(failures)} variant(s) failed:", file=sys.stderr)
            for variant, error in failures:
                print(f"  {variant.name}: {error or runner.log(variant)}", file=sys.stderr)
    return 1 if failures else 0


USAGE = """usage: versaseg {fit,validate,test,predict,phantom,ablate,tables,ui,feature-maps} ...

  fit | validate | test | predict   LightningCLI over experiments/configs/*.yaml
                                    (versaseg fit --help for every option)
  phantom                           write a synthetic head phantom cohort
  ablate                            run an ablation (experiments/ablations/*.yaml)
  tables                            an ablation's tables from its MLflow runs
  ui                                serve the MLflow UI of ./mlruns on 127.0.0.1
  feature-maps compare              one layer's feature maps of two runs, side by side
"""


def main(argv: Sequence[str] | None = None, *, report_errors: bool = True) -> int:
    """Entry point of the ``versaseg`` console script; returns the exit status.

    With ``report_errors=False`` data and config errors propagate to the caller
    (the ablation runner keeps them on the variant's run) instead of being printed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # The CLI always passes its (profile-expanded) arguments explicitly.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
    show_traceback = "--traceback" in args
    args = [arg for arg in args if arg != "--traceback"]
    try:
        if not args or args[0] in ("-h", "--help"):
            print(USAGE)
            return 0 if args else 2
        if args[0] == "phantom":
            phantom_main(args[1:])
        elif args[0] == "ui":
            return ui_main(args[1:])
        elif args[0] in ("ablate", "tables"):
            return ablate_main(args[1:], train=args[0] == "ablate")
        elif args[0] == "feature-maps":
            return feature_maps_main(args[1:])
        else:
            try:
                VersasegCLI(apply_profile(args), exit_on_error=report_errors)
            except argparse.ArgumentError as error:
                raise ConfigError(f"invalid configuration: {error}") from error
    except SIGTERMException:
        if not report_errors:
            raise  # a caller (the ablation runner) must stop too
        # Lightning turns SIGTERM into this SystemExit without a code, which would exit 0.
        print("versaseg: stopped by SIGTERM", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (ManifestError, ConfigError, AblationError, FeatureMapError) as error:
        if show_traceback or not report_errors:
            raise
        print(f"versaseg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
