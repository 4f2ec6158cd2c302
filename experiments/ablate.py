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

import hashlib
import itertools
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities import RunStatus

from experiments.tracking import default_tracking_uri

REPO = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO / "experiments" / "configs" / "profiles"
REQUIRED_KEYS = ("name", "config", "grid")


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
    config = Path(content["config"])
    config = config if config.is_absolute() else REPO / config
    if not config.is_file():
        raise AblationError(f"ablation file {path}: base config {config} does not exist")
    seeds = content.get("seeds", [42])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise AblationError(f"ablation file {path}: `seeds` must be a list of integers")
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


def expand(ablation: Ablation, *, seeds: Sequence[int] | None = None) -> list[Variant]:
    """Every combination of one entry per axis and one seed, in grid order."""
    seeds = list(seeds) if seeds else ablation.seeds
    axes = list(ablation.grid)
    variants = []
    for entries in itertools.product(*(ablation.grid[axis].items() for axis in axes)):
        overrides = dict(ablation.overrides)
        for _, entry_overrides in entries:
            overrides.update(entry_overrides)
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
        node[leaf] = value
    return tree


def config_hash(ablation: Ablation, variant: Variant, *, profile: str, manifest: str) -> str:
    """A digest of everything that decides a variant's result.

    The base config and profile files by content, the overrides, seed and the
    data manifest path: change any of them and the variant is trained anew.
    """
    profile_text = (PROFILES_DIR / f"{profile}.yaml").read_text()
    payload = {
        "config": ablation.config.read_text(),
        "profile": profile_text,
        "overrides": variant.overrides,
        "seed": variant.seed,
        "manifest": str(Path(manifest).resolve()),
    }
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def fit_arguments(
    ablation: Ablation,
    variant: Variant,
    *,
    profile: str,
    manifest: str,
    parent_run_id: str,
) -> list[str]:
    """The ``versaseg fit`` arguments that train and test one variant.

    ``run_variant`` appends the variant's own overrides as a last ``--config``.
    """
    tags = {
        "mlflow.parentRunId": parent_run_id,
        "ablation": ablation.name,
        "variant": variant.name,
        "config_hash": variant.config_hash,
        **{f"axis.{axis}": value for axis, value in variant.axes.items()},
    }
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


def run_variant(arguments: list[str], variant_config: dict[str, Any]) -> tuple[int, str]:
    """Train one variant in this process; returns (exit status, error text)."""
    from experiments.cli import main

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(variant_config, handle)
        config_path = handle.name
    try:
        return main([*arguments, "--config", config_path], report_errors=False), ""
    except Exception as error:  # one variant's failure must not stop the grid
        return 1, f"{type(error).__name__}: {error}"
    finally:
        Path(config_path).unlink(missing_ok=True)


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
    ) -> None:
        if not (PROFILES_DIR / f"{profile}.yaml").is_file():
            known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
            raise AblationError(f"unknown profile {profile!r}; choose one of {known}")
        if jobs < 1:
            raise AblationError(f"--jobs must be at least 1, got {jobs}")
        self.ablation = ablation
        self.profile = profile
        self.manifest = manifest
        self.jobs = jobs
        self.client = mlflow.MlflowClient(default_tracking_uri())
        self.variants = [
            Variant(
                v.name,
                v.axes,
                v.overrides,
                v.seed,
                config_hash(ablation, v, profile=profile, manifest=manifest),
            )
            for v in expand(ablation, seeds=seeds)
        ]

    # -------------------------------------------------------------- MLflow
    def experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.ablation.experiment)
        if experiment is not None:
            return experiment.experiment_id
        from experiments.tracking import LOCAL_ARTIFACT_ROOT, is_local_store

        location = None
        if is_local_store(default_tracking_uri()):
            location = str((LOCAL_ARTIFACT_ROOT / self.ablation.experiment).resolve())
        return self.client.create_experiment(self.ablation.experiment, artifact_location=location)

    def find_parent(self) -> str | None:
        """The id of the ablation's parent run for this profile and data, if there is one."""
        query = (
            f"tags.ablation = '{self.ablation.name}' and tags.ablation_role = 'parent' "
            f"and tags.profile = '{self.profile}' "
            f"and tags.manifest = '{Path(self.manifest).resolve()}'"
        )
        found = self.client.search_runs([self.experiment_id()], query, max_results=1)
        return found[0].info.run_id if found else None

    def parent_run(self) -> str:
        """The ablation's parent run for this profile and data, created once, now RUNNING."""
        run_id = self.find_parent()
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        experiment_id = self.experiment_id()
        run = self.client.create_run(
            experiment_id,
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

    def finished_runs(self) -> dict[str, str]:
        """config hash -> run id of this ablation's FINISHED child runs."""
        runs = self.client.search_runs(
            [self.experiment_id()],
            f"tags.ablation = '{self.ablation.name}' and attributes.status = 'FINISHED'",
        )
        return {
            run.data.tags["config_hash"]: run.info.run_id
            for run in runs
            if "config_hash" in run.data.tags and "ablation_role" not in run.data.tags
        }

    def child_for(self, variant: Variant) -> mlflow.entities.Run | None:
        """The newest child run of a variant's config hash, if any."""
        runs = self.client.search_runs(
            [self.experiment_id()],
            f"tags.ablation = '{self.ablation.name}' "
            f"and tags.config_hash = '{variant.config_hash}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def mark_failed(self, variant: Variant, parent_run_id: str, error: str, started: float) -> None:
        """Keep a variant's failure on a run, also when it failed before Lightning made one."""
        run = self.child_for(variant)
        if run is not None and run.info.start_time >= int(started * 1000) - 1000:
            if run.info.status != "FAILED":
                self.client.set_terminated(run.info.run_id, "FAILED")
            if error and "error" not in run.data.tags:
                self.client.set_tag(run.info.run_id, "error", error[:500])
            return
        run = self.client.create_run(
            self.experiment_id(),
            run_name=variant.name,
            tags={
                "mlflow.parentRunId": parent_run_id,
                "ablation": self.ablation.name,
                "variant": variant.name,
                "config_hash": variant.config_hash,
                "error": (error or "failed before training started")[:500],
                **{f"axis.{a}": v for a, v in variant.axes.items()},
            },
        )
        self.client.set_terminated(run.info.run_id, "FAILED")

    # ----------------------------------------------------------------- run
    def run(self) -> list[tuple[Variant, str]]:
        """Train every pending variant; returns the (variant, error) of failures."""
        parent_run_id = self.parent_run()
        done = self.finished_runs()
        pending = [v for v in self.variants if v.config_hash not in done]
        total = len(self.variants)
        print(
            f"ablation {self.ablation.name}: {total} variants, {total - len(pending)} already "
            f"finished, {len(pending)} to run (profile {self.profile}, data {self.manifest})",
            flush=True,
        )
        failures: list[tuple[Variant, str]] = []
        durations: list[float] = []
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            for position, (variant, code, error, seconds) in enumerate(
                self._train(pending, parent_run_id), start=1
            ):
                durations.append(seconds)
                if code != 0:
                    failures.append((variant, error))
                remaining = (len(pending) - position) * sum(durations) / len(durations)
                remaining /= self.jobs
                verdict = "ok" if code == 0 else f"FAILED ({error or f'exit {code}'})"
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

    def _train(self, pending: list[Variant], parent_run_id: str):
        """Yield ``(variant, exit status, error, seconds)`` as variants finish."""
        jobs = [
            (variant, fit_arguments(
                self.ablation, variant, profile=self.profile, manifest=self.manifest,
                parent_run_id=parent_run_id,
            ))
            for variant in pending
        ]  # fmt: skip
        if self.jobs == 1:
            for variant, arguments in jobs:
                started = time.time()
                code, error = run_variant(arguments, nested(variant.overrides))
                if code != 0:
                    self.mark_failed(variant, parent_run_id, error, started)
                yield variant, code, error, time.time() - started
            return
        # Separate processes: each variant trains with its own interpreter state.
        with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn")) as pool:
            started = time.time()
            futures = {
                pool.submit(run_variant, arguments, nested(variant.overrides)): variant
                for variant, arguments in jobs
            }
            last = started
            for future in as_completed(futures):
                variant = futures[future]
                code, error = future.result()
                if code != 0:
                    self.mark_failed(variant, parent_run_id, error, started)
                now = time.time()
                yield variant, code, error, now - last
                last = now


def format_duration(seconds: float) -> str:
    """``83`` -> ``1m23s``."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


# ------------------------------------------------------------------ tables
def row_label(ablation: Ablation, variant: Variant) -> str:
    """The table row of a variant: its values on the ``tables.rows`` axes (``ce+dtm``)."""
    axes = ablation.tables.get("rows") or [a for a in ablation.grid if a != task_axis(ablation)]
    return "+".join(variant.axes[axis] for axis in axes)


def task_axis(ablation: Ablation) -> str | None:
    """The grid axis that holds the task, if the file names one."""
    return ablation.tables.get("task")


def collect_results(runner: AblationRunner) -> tuple[Any, Any]:
    """Per-case metrics and per-epoch curves of the finished runs, as long frames.

    Only runs whose config hash belongs to the grid (this profile and data) count.
    """
    import pandas as pd

    from experiments.tables import per_case_long

    finished = runner.finished_runs()
    per_case_frames, curve_rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for variant in runner.variants:
            run_id = finished.get(variant.config_hash)
            if run_id is None:
                continue
            run = runner.client.get_run(run_id)
            task = run.data.params.get("data.task", "multiclass")
            label = row_label(runner.ablation, variant)
            local = runner.client.download_artifacts(
                run_id, "metrics/per_case_metrics.csv", f"{folder}/{run_id}"
            )
            per_case_frames.append(per_case_long(pd.read_csv(local), variant=label, task=task))
            # Both curves are logged once per epoch; pair them by epoch, not by step.
            val_dice = history(runner.client, run_id, "val/dice_mean")
            train_loss = history(runner.client, run_id, "train/loss")
            if len(train_loss) != len(val_dice):
                train_loss = [float("nan")] * len(val_dice)
            for epoch, (dice, loss) in enumerate(zip(val_dice, train_loss, strict=True), start=1):
                curve_rows.append(
                    {
                        "variant": label,
                        "task": task,
                        "epoch": epoch,
                        "val_dice": dice,
                        "train_loss": loss,
                    }
                )
    if not per_case_frames:
        raise AblationError(
            f"ablation {runner.ablation.name}: no finished runs for this profile and data yet"
        )
    return pd.concat(per_case_frames, ignore_index=True), pd.DataFrame(curve_rows)


def history(client: mlflow.MlflowClient, run_id: str, metric: str) -> list[float]:
    """A metric's logged values in step order."""
    return [
        m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
    ]


def write_reports(runner: AblationRunner, out_dir: Path | None = None) -> Path:
    """Tables from the finished runs -> ``reports/<ablation>/``, logged on the parent run."""
    from experiments.stability import stability_table
    from experiments.tables import write_tables

    results, curves = collect_results(runner)
    out_dir = out_dir or Path("reports") / runner.ablation.name
    stability = stability_table(curves) if not curves.empty else None
    paths = write_tables(
        results,
        stability,
        out_dir,
        title=f"Ablation {runner.ablation.name} (profile {runner.profile})",
        curves=curves if not curves.empty else None,
    )
    parent = runner.find_parent()
    if parent is not None:
        for path in paths.values():
            runner.client.log_artifact(parent, str(path), "tables")
    return paths["report.md"]
