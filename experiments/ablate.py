"""Ablation runner: a study file -> tagged, resumable MLflow parent and child runs.

An ablation file (``experiments/ablations/*.yaml``) names a base config, shared
overrides, a grid of named override sets per axis, and seeds. Every combination
of one entry per axis and one seed is a variant, trained and tested as an
MLflow child run of one parent run per ablation. Each child carries the tags
``ablation``, ``variant``, ``config_hash`` and one ``axis.<name>`` per axis.

Re-running the same command skips variants that already have a FINISHED run
with the same config hash and reruns FAILED or KILLED ones, so an interrupted
ablation resumes where it stopped. A failing variant does not stop the others;
the command exits non-zero at the end with a summary.

Run: ``versaseg ablate experiments/ablations/losses.yaml [--profile quick] [--data CSV]
[--jobs N] [--seeds 1 2]``
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import mlflow
import yaml

from datamodules.manifest import manifest_fingerprint, read_manifest
from experiments.profiles import UnknownProfileError, profile_path
from experiments.tracking import default_tracking_uri

REPO = Path(__file__).resolve().parents[1]
REQUIRED_KEYS = ("name", "config", "grid")
# `tables:` keys: the axes that make a row label, the axis that holds the task
# (binary tasks rank together), the axis whose entries become column groups
# instead of the task, and the column groups plotted against labelled fraction.
TABLE_KEYS = ("rows", "task", "columns", "sparsity")


class AblationError(ValueError):
    """The ablation file or its options are unusable; the message says which and why."""


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its name, axis values, overrides and seed."""

    name: str
    axes: dict[str, str]
    overrides: dict[str, Any]
    seed: int
    config_hash: str = ""


@dataclass
class Ablation:
    """A parsed ablation file."""

    name: str
    experiment: str
    config: Path
    overrides: dict[str, Any]
    grid: dict[str, dict[str, dict[str, Any]]]
    seeds: list[int]
    tables: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


def load_ablation(path: str | Path) -> Ablation:
    """Read and check an ablation file.

    Raises:
        AblationError: naming the file and the problem.
    """
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise AblationError(f"ablation file {path}: cannot be read ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise AblationError(f"ablation file {path}: is not valid YAML ({error})") from error
    if not isinstance(content, dict):
        raise AblationError(f"ablation file {path}: expected a mapping at the top level")
    missing = [key for key in REQUIRED_KEYS if key not in content]
    if missing:
        raise AblationError(f"ablation file {path}: missing keys {missing}")
    grid = content["grid"]
    if not isinstance(grid, dict) or not grid:
        raise AblationError(f"ablation file {path}: `grid` must map axis names to entries")
    for axis, entries in grid.items():
        if not isinstance(entries, dict) or not entries:
            raise AblationError(f"ablation file {path}: axis {axis!r} has no named entries")
        for entry, overrides in entries.items():
            if not isinstance(overrides, dict):
                raise AblationError(
                    f"ablation file {path}: entry {axis}.{entry} must map config keys to values"
                )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(content["name"])):
        raise AblationError(
            f"ablation file {path}: name {content['name']!r} may use letters, digits, '_', "
            "'.' and '-' only (it is an MLflow tag value and a folder name)"
        )
    config = Path(content["config"])
    config = config if config.is_absolute() else REPO / config
    if not config.is_file():
        raise AblationError(f"ablation file {path}: base config {config} does not exist")
    seeds = content.get("seeds", [42])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise AblationError(f"ablation file {path}: `seeds` must be a list of integers")
    _check_tables(path, dict(content.get("tables") or {}), grid)
    return Ablation(
        name=str(content["name"]),
        experiment=str(content.get("experiment", content["name"])),
        config=config,
        overrides=dict(content.get("overrides") or {}),
        grid={str(a): {str(e): dict(o) for e, o in entries.items()} for a, entries in grid.items()},
        seeds=seeds,
        tables=dict(content.get("tables") or {}),
        source=path,
    )


def _check_tables(path: Path, tables: dict[str, Any], grid: Mapping[str, Any]) -> None:
    """Raise an AblationError for a `tables:` key or axis the file does not define."""
    unknown = sorted(set(tables) - set(TABLE_KEYS))
    if unknown:
        raise AblationError(
            f"ablation file {path}: unknown `tables` key(s) {unknown}; known: {list(TABLE_KEYS)}"
        )
    axes = [*tables.get("rows", []), *[tables[k] for k in ("task", "columns") if k in tables]]
    missing = [axis for axis in axes if axis not in grid]
    if missing:
        raise AblationError(
            f"ablation file {path}: `tables` names axes {missing} that the grid lacks; "
            f"the grid has {list(grid)}"
        )
    if "sparsity" in tables:
        entries = grid.get(tables.get("columns"), {})
        bad = [entry for entry in tables["sparsity"] if entry not in entries]
        if not entries or bad:
            raise AblationError(
                f"ablation file {path}: `tables.sparsity` must list entries of the "
                f"`tables.columns` axis; {bad or tables['sparsity']} are not"
            )


def expand(ablation: Ablation, *, seeds: Sequence[int] | None = None) -> list[Variant]:
    """Every combination of one entry per axis and one seed, in grid order."""
    seeds = list(seeds) if seeds else ablation.seeds
    axes = list(ablation.grid)
    variants = []
    for entries in itertools.product(*(ablation.grid[axis].items() for axis in axes)):
        overrides = copy.deepcopy(ablation.overrides)
        for _, entry_overrides in entries:
            overrides.update(copy.deepcopy(entry_overrides))
        names = [name for name, _ in entries]
        for seed in seeds:
            suffix = f"-seed{seed}" if len(seeds) > 1 else ""
            variants.append(
                Variant(
                    name="-".join(names) + suffix,
                    axes=dict(zip(axes, names, strict=True)),
                    overrides=overrides,
                    seed=seed,
                )
            )
    return variants


def nested(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``: a config file LightningCLI can read."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AblationError(f"override {key!r} goes inside {part!r}, which is a value")
        if isinstance(node.get(leaf), dict) and isinstance(value, dict):
            node[leaf] = {**node[leaf], **copy.deepcopy(value)}
        else:
            node[leaf] = copy.deepcopy(value)
    return tree


def data_channels(ablation: Ablation) -> list[str]:
    """The input channels the ablation reads: its overrides', else its base config's."""
    if "data.channels" in ablation.overrides:
        return list(ablation.overrides["data.channels"])
    base = yaml.safe_load(ablation.config.read_text()) or {}
    channels = (base.get("data") or {}).get("channels")
    if not channels:
        raise AblationError(f"{ablation.config}: names no data.channels")
    return list(channels)


def config_hash(
    ablation: Ablation, variant: Variant, *, profile: str, data_fingerprint: str
) -> str:
    """A digest of everything that decides a variant's result.

    The base config and profile files by content, the overrides, the seed and the
    data by content (``manifest_fingerprint``): change any of them and the variant
    is trained anew. The code version is not part of it (it is the ``git_commit``
    tag of each run): rerunning after a code change is a decision, not a default.
    """
    payload = {
        "config": ablation.config.read_text(),
        "profile": profile_path(profile).read_text(),
        "overrides": variant.overrides,
        "seed": variant.seed,
        "data": data_fingerprint,
    }
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def fit_arguments(
    ablation: Ablation, variant: Variant, *, profile: str, manifest: str, tags: dict[str, str]
) -> list[str]:
    """The ``versaseg fit`` arguments that train and test one variant.

    ``run_variant`` appends the variant's own overrides as a last ``--config``.
    """
    return [
        "fit",
        "--config", str(ablation.config),
        "--profile", profile,
        "--data.manifest", manifest,
        "--seed_everything", str(variant.seed),
        "--test_after_fit", "true",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.experiment_name", ablation.experiment,
        "--trainer.logger.init_args.run_name", variant.name,
        "--trainer.logger.init_args.tags", json.dumps(tags),
    ]  # fmt: skip


def run_variant(
    arguments: list[str], variant_config: dict[str, Any], log_path: Path
) -> tuple[int, str, float]:
    """Train one variant in this process; returns (exit status, error text, seconds).

    What the run prints goes to ``log_path``, so the ablation's own output stays
    one line per variant.
    """
    from experiments.cli import main

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(variant_config, handle)
        config_path = handle.name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with log_path.open("w") as log, quiet(log):
        try:
            code = main([*arguments, "--config", config_path], report_errors=False)
            return code, "", time.time() - started
        except Exception as error:  # one variant's failure must not stop the grid
            traceback.print_exc(file=log)
            return 1, f"{type(error).__name__}: {error}", time.time() - started
        finally:
            Path(config_path).unlink(missing_ok=True)


@contextmanager
def quiet(stream: TextIO) -> Iterator[None]:
    """Send prints, warnings (they go to stderr) and Lightning's log lines to ``stream``."""
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
    try:
        with redirect_stdout(stream), redirect_stderr(stream):
            yield
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate


class AblationRunner:
    """Run an ablation's pending variants under one MLflow parent run."""

    def __init__(
        self,
        ablation: Ablation,
        *,
        profile: str = "quick",
        manifest: str = "data/phantom/manifest.csv",
        jobs: int = 1,
        seeds: Sequence[int] | None = None,
        reports: Path | None = None,
    ) -> None:
        try:
            profile_path(profile)
        except UnknownProfileError as error:
            raise AblationError(str(error)) from error
        if jobs < 1:
            raise AblationError(f"--jobs must be at least 1, got {jobs}")
        self.ablation = ablation
        self.profile = profile
        self.manifest = manifest
        self.jobs = jobs
        self.reports = reports or Path("reports") / ablation.name
        self.client = mlflow.MlflowClient(default_tracking_uri())
        self._experiment_id: str | None = None
        # Reads every file of the manifest once: a missing one fails here, not 60 times.
        records = read_manifest(manifest, data_channels(ablation), require_label=False)
        fingerprint = manifest_fingerprint(manifest, records)
        self.variants = [
            Variant(
                v.name,
                v.axes,
                v.overrides,
                v.seed,
                config_hash(ablation, v, profile=profile, data_fingerprint=fingerprint),
            )
            for v in expand(ablation, seeds=seeds)
        ]

    # -------------------------------------------------------------- MLflow
    def experiment_id(self) -> str:
        """The ablation's MLflow experiment, created on first use."""
        if self._experiment_id is None:
            experiment = self.client.get_experiment_by_name(self.ablation.experiment)
            if experiment is not None:
                self._experiment_id = experiment.experiment_id
            else:
                from experiments.tracking import LOCAL_ARTIFACT_ROOT, is_local_store

                location = None
                if is_local_store(default_tracking_uri()):
                    location = str((LOCAL_ARTIFACT_ROOT / self.ablation.experiment).resolve())
                self._experiment_id = self.client.create_experiment(
                    self.ablation.experiment, artifact_location=location
                )
        return self._experiment_id

    def search(self, query: str, **options: Any) -> list[mlflow.entities.Run]:
        """This ablation's runs that match ``query`` (an MLflow filter string)."""
        ablation = f"tags.ablation = '{self.ablation.name}'"
        return self.client.search_runs(
            [self.experiment_id()], f"{ablation} and {query}" if query else ablation, **options
        )

    def find_parent(self) -> str | None:
        """The id of the ablation's parent run for this profile and data, if there is one."""
        found = self.search(
            f"tags.ablation_role = 'parent' and tags.profile = '{self.profile}' "
            f"and tags.manifest = '{Path(self.manifest).resolve()}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def parent_run(self) -> str:
        """The ablation's parent run for this profile and data, created once, now RUNNING."""
        run_id = self.find_parent()
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id(),
            run_name=f"{self.ablation.name}-{self.profile}",
            tags={
                "ablation": self.ablation.name,
                "ablation_role": "parent",
                "profile": self.profile,
                "manifest": str(Path(self.manifest).resolve()),
                "thread": self.ablation.experiment,
            },
        )
        return run.info.run_id

    def child_tags(self, variant: Variant, parent_run_id: str) -> dict[str, str]:
        """The tags that make a run a child of the ablation and name its variant."""
        return {
            "mlflow.parentRunId": parent_run_id,
            "ablation": self.ablation.name,
            "variant": variant.name,
            "config_hash": variant.config_hash,
            **{f"axis.{axis}": value for axis, value in variant.axes.items()},
        }

    def finished_runs(self) -> dict[str, mlflow.entities.Run]:
        """config hash -> the newest FINISHED and tested child run of each variant.

        A run only counts once its test has been logged (tag ``tested``): fit
        marks a run FINISHED before the test runs.
        """
        hashes = {variant.config_hash for variant in self.variants}
        runs = self.search(
            "attributes.status = 'FINISHED' and tags.tested = 'true'",
            order_by=["attributes.start_time ASC"],
        )
        return {
            run.data.tags["config_hash"]: run
            for run in runs
            if run.data.tags.get("config_hash") in hashes
        }

    def close_stale_runs(self, parent_run_id: str) -> int:
        """Mark children left RUNNING by a killed process as KILLED; returns how many.

        A process killed outright (SIGKILL, a lost machine) cannot end its own run.
        Only children of this parent (this profile and data) are touched.
        """
        stale = self.search(
            f"attributes.status = 'RUNNING' and tags.mlflow.parentRunId = '{parent_run_id}'"
        )
        for run in stale:
            self.client.set_tag(
                run.info.run_id, "error", "found RUNNING when the ablation restarted"
            )
            self.client.set_terminated(run.info.run_id, "KILLED")
        return len(stale)

    def mark_failed(self, variant: Variant, parent_run_id: str, error: str, started: float) -> None:
        """Keep a variant's failure on a run, also when it failed before Lightning made one."""
        runs = self.search(
            f"tags.config_hash = '{variant.config_hash}' "
            f"and attributes.start_time >= {int(started * 1000) - 1000}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        message = (error or "failed; see the variant's log")[:500]
        if runs:
            run = runs[0]
            if run.info.status != "FAILED":
                self.client.set_terminated(run.info.run_id, "FAILED")
            if "error" not in run.data.tags:
                self.client.set_tag(run.info.run_id, "error", message)
            return
        tags = {**self.child_tags(variant, parent_run_id), "error": message}
        run = self.client.create_run(self.experiment_id(), run_name=variant.name, tags=tags)
        self.client.set_terminated(run.info.run_id, "FAILED")

    # ----------------------------------------------------------------- run
    def run(self) -> list[tuple[Variant, str]]:
        """Train every pending variant; returns the (variant, error) of failures."""
        parent_run_id = self.parent_run()
        failures: list[tuple[Variant, str]] = []
        status = "FAILED"
        try:
            stale = self.close_stale_runs(parent_run_id)
            if stale:
                print(f"marked {stale} run(s) left RUNNING by an earlier, killed process KILLED")
            done = self.finished_runs()
            pending = [v for v in self.variants if v.config_hash not in done]
            total = len(self.variants)
            print(
                f"ablation {self.ablation.name}: {total} variants, {total - len(pending)} "
                f"already finished, {len(pending)} to run (profile {self.profile}, "
                f"data {self.manifest})",
                flush=True,
            )
            started = time.time()
            for position, (variant, code, error, seconds) in enumerate(
                self._train(pending, parent_run_id), start=1
            ):
                if code != 0:
                    failures.append((variant, error))
                elapsed = time.time() - started
                remaining = elapsed / position * (len(pending) - position)
                verdict = "ok" if code == 0 else f"FAILED (see {self.log(variant)})"
                index = self.variants.index(variant) + 1
                print(
                    f"[{index:>{len(str(total))}}/{total}] {variant.name:<32} {verdict:<6} "
                    f"{seconds:6.1f} s   done {position}/{len(pending)}, "
                    f"ETA {format_duration(remaining)}",
                    flush=True,
                )
            status = "FINISHED" if not failures else "FAILED"
        except (KeyboardInterrupt, SystemExit):
            status = "KILLED"
            raise
        finally:
            self.client.set_terminated(parent_run_id, status)
        return failures

    def log(self, variant: Variant) -> Path:
        """Where a variant's training output goes."""
        return self.reports / "logs" / f"{variant.name}.log"

    def _train(self, pending: list[Variant], parent_run_id: str) -> Iterator[tuple]:
        """Yield ``(variant, exit status, error, seconds)`` as variants finish."""
        jobs = [
            (variant, fit_arguments(
                self.ablation, variant, profile=self.profile, manifest=self.manifest,
                tags=self.child_tags(variant, parent_run_id),
            ))
            for variant in pending
        ]  # fmt: skip
        if self.jobs == 1:
            for variant, arguments in jobs:
                started = time.time()
                code, error, seconds = run_variant(
                    arguments, nested(variant.overrides), self.log(variant)
                )
                if code != 0:
                    self.mark_failed(variant, parent_run_id, error, started)
                yield variant, code, error, seconds
            return
        # Separate processes, each variant with its own interpreter state.
        started = time.time()
        pool = ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn"))
        try:
            futures = {
                pool.submit(
                    run_variant, arguments, nested(variant.overrides), self.log(variant)
                ): variant
                for variant, arguments in jobs
            }
            for future in as_completed(futures):
                variant = futures[future]
                try:
                    code, error, seconds = future.result()
                except BrokenProcessPool as broken:  # a worker died (e.g. out of memory)
                    code, error, seconds = 1, f"worker process died: {broken}", 0.0
                if code != 0:
                    self.mark_failed(variant, parent_run_id, error, started)
                yield variant, code, error, seconds
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)


def format_duration(seconds: float) -> str:
    """``83`` -> ``1m23s``."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


# ------------------------------------------------------------------ tables
def row_label(ablation: Ablation, variant: Variant) -> str:
    """The table row of a variant: its values on the ``tables.rows`` axes (``ce+dtm``)."""
    grouping = {ablation.tables.get("task"), ablation.tables.get("columns")}
    axes = ablation.tables.get("rows") or [a for a in ablation.grid if a not in grouping]
    return "+".join(variant.axes[axis] for axis in axes)


def column_group(ablation: Ablation, variant: Variant, run: mlflow.entities.Run) -> str:
    """The table column group of a run: its ``tables.columns`` entry, else its task."""
    axis = ablation.tables.get("columns")
    return variant.axes[axis] if axis else run.data.params.get("data.task", "multiclass")


@dataclass
class AblationResults:
    """What the tables are made of, as long frames for ``experiments.tables``.

    ``results``: per-case metrics; ``stability``: one row of ``stability/*`` per
    run; ``curves``: validation Dice and training loss per epoch; ``supervision``:
    one row per run: ``weak_labels`` (whether it trained on weak labels) and its
    ``weak_label/*``; ``complexity``: one row of network
    parameters and multiply-adds per run. Each carries ``variant`` and ``task``
    (the column group).
    """

    results: Any
    stability: Any
    curves: Any
    supervision: Any
    complexity: Any


def collect_results(runner: AblationRunner) -> AblationResults:
    """Per-case metrics, stability, curves and run facts of the finished runs.

    Only runs whose config hash belongs to the grid (this profile and data)
    count. With several seeds, per-case values and curves are averaged over the
    seeds of a variant, and stability is averaged over its runs.
    """
    import pandas as pd

    from experiments.stability import PREFIX
    from experiments.tables import SUPERVISION_PREFIX
    from experiments.tracking import COMPLEXITY

    # One download per run: MLflow's progress bars would bury the tables.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    from experiments.tables import per_case_long

    finished = runner.finished_runs()
    per_case, stability, curves, supervision, complexity = [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for variant in runner.variants:
            run = finished.get(variant.config_hash)
            if run is None:
                continue
            run_id = run.info.run_id
            keys = {
                "variant": row_label(runner.ablation, variant),
                "task": column_group(runner.ablation, variant, run),
            }
            metrics = run.data.metrics
            local = runner.client.download_artifacts(
                run_id, "metrics/per_case_metrics.csv", f"{folder}/{run_id}"
            )
            per_case.append(per_case_long(pd.read_csv(local), **keys))
            stability.append({**keys, **{k: v for k, v in metrics.items() if k.startswith(PREFIX)}})
            weak = run.data.params.get("data.weak_labels", "None") not in ("None", "[]", "")
            supervision.append(
                {
                    **keys,
                    "weak_labels": weak,
                    **{k: v for k, v in metrics.items() if k.startswith(SUPERVISION_PREFIX)},
                }
            )
            complexity.append(
                {**keys, **{k: metrics.get(f"model/{k}", float("nan")) for k in COMPLEXITY}}
            )
            # Both curves are logged once per epoch; pair them by epoch, not by step.
            val_dice = history(runner.client, run_id, "val/dice_mean")
            train_loss = history(runner.client, run_id, "train/loss")
            if len(train_loss) != len(val_dice):
                train_loss = [float("nan")] * len(val_dice)
            for epoch, (dice, loss) in enumerate(zip(val_dice, train_loss, strict=True), start=1):
                curves.append({**keys, "epoch": epoch, "val_dice": dice, "train_loss": loss})
    if not per_case:
        raise AblationError(
            f"ablation {runner.ablation.name}: no finished runs for this profile and data yet"
        )
    results = pd.concat(per_case, ignore_index=True)
    # Seeds of one variant share a row label: average them per case.
    keys = ["variant", "task", "subject", "class", "metric"]
    results = results.groupby(keys, sort=False, as_index=False)["value"].mean()
    curves = pd.DataFrame(curves)
    if not curves.empty:
        curves = curves.groupby(["variant", "task", "epoch"], sort=False, as_index=False).mean()
    return AblationResults(
        results,
        pd.DataFrame(stability),
        curves,
        pd.DataFrame(supervision),
        pd.DataFrame(complexity),
    )


def history(client: mlflow.MlflowClient, run_id: str, metric: str) -> list[float]:
    """A metric's logged values in step order."""
    return [
        m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
    ]


def write_reports(runner: AblationRunner) -> Path:
    """Tables from the finished runs -> ``runner.reports``, logged on the parent run."""
    from experiments.tables import write_tables
    from experiments.tracking import COMPLEXITY

    collected = collect_results(runner)

    def present(frame: Any) -> Any:
        """The frame, or None when it holds nothing beyond ``variant`` and ``task``."""
        values = frame.drop(columns=["variant", "task"], errors="ignore")
        return None if values.dropna(how="all", axis=1).empty else frame

    complexity = present(collected.complexity)
    if complexity is not None:
        # Only worth a table when the rows train different networks: within a
        # column group (a task's class count sets the head) the sizes differ.
        sizes = complexity.groupby("task")[list(COMPLEXITY)].nunique()
        if sizes.to_numpy().max() < 2:
            complexity = None

    paths = write_tables(
        collected.results,
        present(collected.stability),
        runner.reports,
        title=f"Ablation {runner.ablation.name} (profile {runner.profile})",
        curves=present(collected.curves),
        supervision=collected.supervision if collected.supervision["weak_labels"].any() else None,
        complexity=complexity,
        sparsity=runner.ablation.tables.get("sparsity"),
    )
    parent = runner.find_parent()
    if parent is not None:
        for path in paths.values():
            runner.client.log_artifact(parent, str(path), "tables")
    return paths["report.md"]
