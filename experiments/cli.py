"""The ``versaseg`` command: LightningCLI's fit, validate, test and predict, plus ``phantom``.

Usage::

    versaseg phantom --subjects 12 --out data/phantom --seed 0 [--distractors 4]
    versaseg ixi SOURCE --out data/ixi [--channels T2 MRA] [--reference T2] [--download]
    versaseg fit --config experiments/configs/baseline.yaml [--profile smoke|quick|paper]
                 [--data.manifest CSV] [--trainer.max_epochs N] [--test_after_fit true]
    versaseg test --config ... --ckpt_path CKPT
    versaseg predict --config ... --ckpt_path CKPT --data.manifest CSV
    versaseg cleanse --method network|raw|nearest|shape|contour --output DIR
                     --config experiments/configs/baseline.yaml
                     --config experiments/configs/cleansing.yaml [--profile ...] [fit flags]
    versaseg translate --output DIR --config experiments/configs/baseline.yaml
                       --config experiments/configs/translation.yaml [--profile ...] [fit flags]
    versaseg ui [--port 5000] [--host 127.0.0.1]
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

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from datamodules.manifest_records import ManifestError
from experiments.ablation_file import AblationError, load_ablation, parse_settings
from experiments.input_checks import CommandParser, UsageError, check_output_folder
from experiments.profiles import DEFAULT_PROFILE

# Each command imports what it needs when it runs: torch, Lightning and MLflow take
# about 9 s to import, which `versaseg phantom`, `ui` or `--help` never use.


def phantom_main(args: Sequence[str]) -> None:
    """``versaseg phantom``: write a seeded phantom cohort and its manifest."""
    from datamodules.phantom import write_phantom
    from datamodules.phantom.geometry import validated_geometry

    parser = CommandParser(
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
    parser.add_argument(
        "--distractors",
        type=int,
        default=0,
        metavar="N",
        help="blobs of brain-like tissue in a sheath of fluid outside the skull per subject, "
        "labelled background (a harder phantom; default 0)",
    )
    options = parser.parse_args(args)
    if options.subjects < 1:
        parser.error(f"--subjects must be at least 1, got {options.subjects}")
    if options.distractors < 0:
        parser.error(f"--distractors must be at least 0, got {options.distractors}")
    try:
        validated_geometry(options.shape, options.spacing)
    except ValueError as error:
        parser.error(f"--shape/--spacing: {error}")
    check_output_folder(options.out, "--out")

    def progress(done: int, total: int) -> None:
        print(f"\rphantom: {done}/{total} subjects", end="\n" if done == total else "", flush=True)

    manifest = write_phantom(
        options.out,
        options.subjects,
        seed=options.seed,
        shape=tuple(options.shape),
        spacing=tuple(options.spacing),
        distractors=options.distractors,
        progress=progress,
    )
    print(f"phantom: manifest written to {manifest}")


def ixi_main(args: Sequence[str]) -> None:
    """``versaseg ixi``: turn IXI files into a cohort (manifest, description, head-mask labels)."""
    from datamodules import ixi

    parser = CommandParser(
        prog="versaseg ixi",
        description="Write a cohort from IXI head MRI: channels on the reference grid, a head "
        "mask as label (IXI has no segmentations), manifest.csv and dataset.yaml.",
    )
    parser.add_argument("source", type=Path, help="folder of IXI*.nii.gz files (any depth)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--channels", nargs="+", default=list(ixi.DEFAULT_CHANNELS))
    parser.add_argument(
        "--reference",
        default=ixi.DEFAULT_REFERENCE,
        help="grid of every channel; translation source",
    )
    parser.add_argument(
        "--download", action="store_true", help="download the channels into SOURCE first"
    )
    options = parser.parse_args(args)
    try:
        ixi.translation_pair(options.channels, options.reference)
    except ValueError as error:
        parser.error(str(error))
    check_output_folder(options.out, "--out")
    if options.download:
        ixi.fetch_ixi(options.source, options.channels)

    def progress(done: int, total: int) -> None:
        print(f"\rixi: {done}/{total} subjects", end="\n" if done == total else "", flush=True)

    cohort = ixi.write_ixi_cohort(
        options.source,
        options.out,
        channels=options.channels,
        reference=options.reference,
        progress=progress,
    )
    for line in cohort.skipped:
        print(line)
    print(f"ixi: {len(cohort.subjects)} subjects, manifest written to {cohort.manifest}")


def ui_main(args: Sequence[str]) -> int:
    """``versaseg ui``: serve the MLflow UI of this folder's store, on 127.0.0.1 by default."""
    from experiments.mlflow_ui import ui_addresses
    from experiments.tracking import default_tracking_uri, is_local_store

    parser = CommandParser(
        prog="versaseg ui",
        description="Serve the MLflow UI of the local store (127.0.0.1 unless --host says).",
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)"
    )
    options = parser.parse_args(args)
    store = default_tracking_uri()
    if not is_local_store(store):
        print(f"MLFLOW_TRACKING_URI is {store}: open that server's UI instead.")
        # One quick try: an unreachable server would otherwise be retried for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        for line in ui_addresses(store, store):
            print(line)
        return 0
    shown = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    reach = "this machine only" if options.host == "127.0.0.1" else "the network"
    print(f"MLflow UI for {store}, bound to {options.host} ({reach}); Ctrl-C stops it")
    for line in ui_addresses(store, f"http://{shown}:{options.port}"):
        print(line)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    command += ["--host", options.host, "--port", str(options.port)]
    sys.stdout.flush()
    # Become the server, so that signals reach it and its workers directly.
    os.execv(sys.executable, command)
    return 1  # not reached


def ablate_main(args: Sequence[str], *, train: bool = True) -> int:
    """``versaseg ablate`` (train the pending variants, then tables) and ``versaseg tables``."""
    from experiments.ablate import AblationRunner
    from experiments.ablation_launchers import LAUNCHERS
    from experiments.ablation_results import write_reports

    parser = CommandParser(
        prog="versaseg ablate" if train else "versaseg tables",
        description="Run an ablation as MLflow parent and child runs, then write its tables."
        if train
        else "Write an ablation's tables from its finished MLflow runs.",
    )
    parser.add_argument("ablation", type=Path, help="experiments/ablations/<name>.yaml")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="smoke, quick or paper")
    parser.add_argument("--data", default="data/phantom/manifest.csv", help="manifest CSV")
    parser.add_argument(
        "--dataset", help="dataset description YAML (default: dataset.yaml beside the manifest)"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for every variant (dotted keys as in the grid; "
        "repeatable; decides over the profile and the study's budget)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="override the file's seeds")
    if train:
        parser.add_argument("--jobs", type=int, default=1, help="variants trained side by side")
        parser.add_argument(
            "--launcher",
            choices=LAUNCHERS,
            default="local",
            help="local: processes on this machine; ray: each variant a Ray task",
        )
        parser.add_argument(
            "--address", help="the Ray cluster (HOST:PORT); default: start a local Ray instance"
        )
        parser.add_argument(
            "--print_config",
            nargs="?",
            const="",
            metavar="VARIANT",
            help="print the resolved config of a variant (default: the first) and exit",
        )
    parser.add_argument("--reports", type=Path, help="output folder (reports/<ablation>)")
    options = parser.parse_args(args)
    runner = AblationRunner(
        load_ablation(options.ablation),
        profile=options.profile,
        manifest=options.data,
        dataset=options.dataset,
        settings=parse_settings(options.settings),
        jobs=getattr(options, "jobs", 1),
        launcher=getattr(options, "launcher", "local"),
        address=getattr(options, "address", None),
        seeds=options.seeds,
        reports=options.reports,
    )
    if getattr(options, "print_config", None) is not None:
        runner.print_config(options.print_config or None)
        return 0
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


USAGE = """usage: versaseg COMMAND ...   (COMMAND: one of those below)

  fit | validate | test | predict   LightningCLI over experiments/configs/*.yaml
                                    (versaseg fit --help for every option)
  phantom                           write a synthetic head phantom cohort
  ixi                               write a cohort from IXI head MRI (T2 -> MRA)
  ablate                            run an ablation (experiments/ablations/*.yaml)
  tables                            an ablation's tables from its MLflow runs
  cleanse                           stage 1 of label cleansing: reconstructed training labels
  translate                         stage 1 of the pseudo-image thread: pix2pix images as a cohort
  ui                                serve the MLflow UI of ./mlruns on 127.0.0.1
  feature-maps compare              one layer's feature maps of two runs, side by side
"""


def cleanse_main(args: Sequence[str]) -> None:
    """``versaseg cleanse``: stage 1 of the label-cleansing thread (``experiments.cleanse``)."""
    from experiments.cleanse import METHODS, run_stage
    from experiments.fit import apply_profile

    parser = CommandParser(
        prog="versaseg cleanse",
        description="Reconstruct the training labels from weak ones and write them as a "
        "cohort (manifest.csv + dataset.yaml); other options are versaseg fit's.",
    )
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--output", required=True, help="folder of the new cohort")
    options, rest = parser.parse_known_args(args)
    check_output_folder(options.output, "--output")  # before training, not after
    # apply_profile works on a subcommand line; the stage parses without one.
    arguments = apply_profile(["fit", *rest])[1:]
    run_stage(arguments, method=options.method, output=options.output)


def translate_main(args: Sequence[str]) -> None:
    """``versaseg translate``: stage 1 of the pseudo-image thread (``experiments.translate``)."""
    from experiments.fit import apply_profile
    from experiments.translate import METHODS, run_stage

    parser = CommandParser(
        prog="versaseg translate",
        description="Train pix2pix on the training subjects and write every subject's "
        "generated image as a cohort (manifest.csv + dataset.yaml); other options are "
        "versaseg fit's.",
    )
    parser.add_argument("--method", choices=METHODS, default=METHODS[0])
    parser.add_argument("--output", required=True, help="folder of the new cohort")
    options, rest = parser.parse_known_args(args)
    check_output_folder(options.output, "--output")  # before training, not after
    arguments = apply_profile(["fit", *rest])[1:]
    run_stage(arguments, method=options.method, output=options.output)


# Errors of bad data, config or usage defined beside torch or Lightning: (module, class).
USER_ERRORS = (("experiments.fit", "ConfigError"), ("experiments.feature_maps", "FeatureMapError"))


def raised_as(error: BaseException, module: str, name: str) -> bool:
    """Whether ``error`` is an instance of ``module.name``, without importing ``module``.

    A module that was never imported cannot have raised its errors, and importing it
    only to ask would cost a command such as ``phantom`` the seconds it saves.
    """
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(error, getattr(loaded, name))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``versaseg`` console script; returns the exit status.

    The library raises; this layer prints one ``versaseg: error:`` line for bad
    data or config and returns 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # MLflow announces creating its tables on stderr, above any error of ours.
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    show_traceback = "--traceback" in args
    args = [arg for arg in args if arg != "--traceback"]
    try:
        if not args or args[0] in ("-h", "--help"):
            print(USAGE)
            return 0 if args else 2
        if args[0] == "phantom":
            phantom_main(args[1:])
        elif args[0] == "ixi":
            ixi_main(args[1:])
        elif args[0] == "ui":
            return ui_main(args[1:])
        elif args[0] in ("ablate", "tables"):
            return ablate_main(args[1:], train=args[0] == "ablate")
        elif args[0] == "feature-maps":
            from experiments.feature_maps import feature_maps_main

            return feature_maps_main(args[1:])
        elif args[0] == "cleanse":
            cleanse_main(args[1:])
        elif args[0] == "translate":
            translate_main(args[1:])
        else:
            from experiments.fit import apply_profile, run_lightning

            run_lightning(apply_profile(args))
    except SystemExit as stop:
        if not raised_as(stop, "lightning.pytorch.utilities.exceptions", "SIGTERMException"):
            raise
        # Lightning turns SIGTERM into this SystemExit without a code, which would exit 0.
        print("versaseg: stopped by SIGTERM", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as error:
        if show_traceback:
            raise
        if raised_as(error, "lightning_modules.divergence", "NonFiniteLossError"):
            print(
                f"versaseg: error: training diverged: {error}; the run is FAILED", file=sys.stderr
            )
            return 1
        if not isinstance(error, (ManifestError, AblationError, UsageError)) and not any(
            raised_as(error, module, name) for module, name in USER_ERRORS
        ):
            raise
        print(f"versaseg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
