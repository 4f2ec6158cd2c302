"""Ablation runner: a study file -> tagged, resumable MLflow parent and child runs.

Every variant of an ablation file (``experiments.ablation_file``) is trained and
tested as an MLflow child run of one parent run per ablation, profile, data and
``--set`` settings. Each child carries the tags ``ablation``, ``variant``,
``config_hash`` and one ``axis.<name>`` per axis. Its config layers (method,
budget, settings) are written to ``reports/<ablation>/configs/<variant>/``.

Re-running the same command skips variants that already have a FINISHED run
with the same config hash and reruns FAILED or KILLED ones, so an interrupted
ablation resumes where it stopped. A failing variant does not stop the others;
the command exits non-zero at the end with a summary.

The layers show what each level set; the run's logged ``config.yaml`` is the
resolved config and reruns the variant exactly (``versaseg fit --config config.yaml``).
A variant whose grid entry sets ``stage1.method`` runs its first stage before it
(``experiments.ablation_stages``) and trains on the cohort that stage wrote.

Run: ``versaseg ablate experiments/ablations/losses.yaml [--profile quick] [--data CSV]
[--set key=value ...] [--jobs N] [--launcher local|ray] [--address HOST:PORT] [--seeds 1 2]
[--print_config [VARIANT]]``
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import yaml

from datamodules.dataset import load_description
from datamodules.manifest import load_manifest, manifest_fingerprint
from experiments.ablation_config import check_settings, config_hash
from experiments.ablation_file import Ablation, AblationError, Variant, expand, nested
from experiments.ablation_jobs import format_duration, run_shared_stages, run_variant
from experiments.ablation_launchers import LAUNCHERS, run_in_processes, run_on_ray, share_of
from experiments.ablation_runs import AblationRuns
from experiments.ablation_stages import (
    Stage1Plan,
    has_stage1,
    split_overrides,
    stage_hash,
    stage_module,
)
from experiments.profiles import UnknownProfileError, profile_path


class AblationRunner:
    """Run an ablation's pending variants under one MLflow parent run."""

    def __init__(
        self,
        ablation: Ablation,
        *,
        profile: str = "quick",
        manifest: str = "data/phantom/manifest.csv",
        dataset: str | None = None,
        settings: Mapping[str, Any] | None = None,
        jobs: int = 1,
        seeds: Sequence[int] | None = None,
        reports: Path | None = None,
        launcher: str = "local",
        address: str | None = None,
    ) -> None:
        try:
            profile_path(profile)
        except UnknownProfileError as error:
            raise AblationError(str(error)) from error
        if jobs < 1:
            raise AblationError(f"--jobs must be at least 1, got {jobs}")
        if launcher not in LAUNCHERS:
            raise AblationError(f"--launcher {launcher}: choose one of {list(LAUNCHERS)}")
        if address and launcher != "ray":
            raise AblationError(f"--address {address} needs --launcher ray")
        check_settings(ablation, settings or {})
        self.ablation = ablation
        self.profile = profile
        self.manifest = manifest
        self.dataset = dataset
        self.settings = dict(settings or {})
        self.jobs, self.launcher, self.address = jobs, launcher, address
        self.reports = reports or Path("reports") / ablation.name
        self.description = load_description(manifest, dataset)
        self.runs = AblationRuns(
            ablation=ablation.name,
            experiment=ablation.experiment,
            profile=profile,
            manifest=manifest,
            settings=self.settings,
            dataset=self.description.to_dict(),
            axes=list(ablation.grid),
            base_config=str(ablation.config),
        )
        # Checks every file of the manifest once: a bad one fails here, not 60 times.
        labels = {0, *self.description.class_map}
        records = load_manifest(manifest, self.description.channels, labels, require_label=False)
        self.fingerprint = fingerprint = manifest_fingerprint(manifest, records)
        self.variants = [
            Variant(
                v.name,
                v.axes,
                v.overrides,
                v.seed,
                config_hash(
                    ablation,
                    v,
                    profile=profile,
                    settings=self.settings,
                    data_fingerprint=fingerprint,
                    description=self.description,
                ),
            )
            for v in expand(
                ablation,
                description=self.description,
                seeds=seeds or ablation.profile_seeds.get(profile),
            )
        ]

    def variant(self, name: str | None = None) -> Variant:
        """The variant called ``name`` (the first one if None).

        Raises:
            AblationError: listing the variant names for an unknown one.
        """
        if name is None:
            return self.variants[0]
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise AblationError(
            f"ablation {self.ablation.name} has no variant {name!r}; it has "
            f"{[v.name for v in self.variants]}"
        )

    def fit_arguments(self, variant: Variant, tags: dict[str, str]) -> list[str]:
        """The ``versaseg fit`` arguments of one variant, its config layers written to disk.

        Layers in precedence order: base config < method (the study's overrides and
        the variant's entries) < profile < the study's budget for the profile <
        ``--set`` settings < the runner's own flags.
        """
        paths = self._write_layers(variant, stage=2)
        arguments = self._arguments(variant, [self.ablation.config], paths, variant.name)
        return [
            "fit",
            *arguments,
            "--test_after_fit", "true",
            "--trainer.logger.init_args.tags", json.dumps(tags),
            *(self.runs.resume_arguments(variant) if tags else []),
        ]  # fmt: skip

    def _arguments(
        self, variant: Variant, base: Sequence[Path], layers: dict[str, Path], run_name: str
    ) -> list[str]:
        """A stage's configs in precedence order, then the runner's own flags."""
        configs = [*base, layers["method"], profile_path(self.profile)]
        configs += [layers["budget"], layers["settings"]]
        dataset = ["--data.dataset", self.dataset] if self.dataset else []
        return [
            *(item for config in configs for item in ("--config", str(config))),
            "--data.manifest", self.manifest,
            *dataset,
            "--seed_everything", str(variant.seed),
            "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.experiment_name", self.ablation.experiment,
            "--trainer.logger.init_args.run_name", run_name,
        ]  # fmt: skip

    def _layers(self, variant: Variant, stage: int) -> dict[str, dict[str, Any]]:
        """The method, budget and settings layers of a variant's stage (1 or 2)."""
        layers = {
            "method": variant.overrides,
            "budget": self.ablation.budgets.get(self.profile, {}),
            "settings": self.settings,
        }
        two_stage = has_stage1(variant.overrides)
        if not two_stage and stage == 2:
            return {
                name: {k: v for k, v in layer.items() if not k.startswith("stage1.")}
                for name, layer in layers.items()
            }
        split = {
            name: split_overrides(layer, two_stage=two_stage, ignores=self.ablation.stage1_ignores)
            for name, layer in layers.items()
        }
        return {name: parts[stage - 1] for name, parts in split.items()}

    def _write_layers(self, variant: Variant, stage: int) -> dict[str, Path]:
        """Write a stage's layers to ``reports/<ablation>/configs/<variant>/``; their paths."""
        folder = self.reports / "configs" / variant.name
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for layer, overrides in self._layers(variant, stage).items():
            if stage == 1:
                overrides = {k: v for k, v in overrides.items() if k != "method"}
                layer = f"stage1_{layer}"
            paths[layer.removeprefix("stage1_")] = folder / f"{layer}.yaml"
            paths[layer.removeprefix("stage1_")].write_text(
                yaml.safe_dump(nested(overrides), sort_keys=False)
            )
        return paths

    def stage1_output(self, variant: Variant) -> tuple[str, Path] | None:
        """``(hash, folder)`` of a two-stage variant's first stage, else None; writes nothing."""
        if not has_stage1(variant.overrides) or self.ablation.stage1_config is None:
            return None
        payload = {
            "config": self.ablation.config.read_text(),
            "stage1_config": self.ablation.stage1_config.read_text(),
            "profile": profile_path(self.profile).read_text(),
            "layers": self._layers(variant, stage=1),
            "seed": variant.seed,
            "data": self.fingerprint,
            "dataset": self.description.to_dict(),
        }
        digest = stage_hash(payload)
        return digest, self.reports / "stage1" / digest

    def stage1_plan(self, variant: Variant, parent_run_id: str = "") -> Stage1Plan | None:
        """The first stage of a two-stage variant (``stage1.method`` set), else None.

        Its layers: base config < the file's stage1 config < method (``data.*`` and
        ``stage1.*`` keys) < profile < budget < settings < runner flags, as stage 2's;
        they are written beside the variant's stage-2 layers.
        """
        found = self.stage1_output(variant)
        if found is None:
            return None
        digest, output = found
        method = str(self._layers(variant, stage=1)["method"].get("method"))
        paths = self._write_layers(variant, stage=1)
        base = [self.ablation.config, self.ablation.stage1_config]
        arguments = self._arguments(variant, base, paths, f"{variant.name}.stage1")
        tags = {
            "ablation": self.ablation.name,
            "ablation_role": "stage1",
            "stage1_hash": digest,
            "variant": variant.name,
            **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
            **{f"axis.{axis}": value for axis, value in variant.axes.items()},
        }
        return Stage1Plan(method, arguments, output, digest, tags)

    def print_config(self, name: str | None = None) -> None:
        """Print the resolved config of one variant (LightningCLI's ``--print_config``)."""
        from experiments.fit import run_lightning

        variant = self.variant(name)
        plan = self.stage1_plan(variant)
        if plan is not None:
            command = stage_module(plan.method).__name__.rsplit(".", 1)[-1]
            print(f"# stage 1: versaseg {command} --method {plan.method} --output {plan.output}")
            try:
                run_lightning(["fit", *plan.arguments, "--print_config"])
            except SystemExit as done:
                if done.code not in (0, None):
                    raise
            print(f"# stage 2: trains on {plan.output / 'manifest.csv'}")
        arguments = self.fit_arguments(variant, {})
        try:
            run_lightning([*arguments, "--print_config"])
        except SystemExit as done:  # --print_config exits once it has printed
            if done.code not in (0, None):
                raise

    def check_config(self) -> None:
        """Parse the first variant's config before anything trains.

        A mistyped ``--set`` key or a bad value in the shared layers would fail every
        variant one by one; here it stops the ablation with one error instead.

        Raises:
            AblationError: with the parser's message.
        """
        from experiments.fit import ConfigError

        try:
            with redirect_stdout(io.StringIO()):
                self.print_config()
        except ConfigError as error:
            raise AblationError(f"ablation {self.ablation.name}: {error}") from error

    # ----------------------------------------------------------------- run
    def run(self) -> list[tuple[Variant, str]]:
        """Train every pending variant; returns the (variant, error) of failures."""
        self.check_config()
        parent_run_id = self.runs.parent_run()
        failures: list[tuple[Variant, str]] = []
        status = "FAILED"
        try:
            stale = self.runs.close_stale_runs(parent_run_id)
            if stale:
                print(f"marked {stale} run(s) left RUNNING by an earlier, killed process KILLED")
            done = self.runs.finished_runs([v.config_hash for v in self.variants])
            # Variants whose configs are the same (an upper bound under every label
            # condition) train once and share the run.
            unique = {v.config_hash: v for v in reversed(self.variants)}
            pending = [
                v for v in self.variants if v.config_hash not in done and unique[v.config_hash] is v
            ]
            total = len(self.variants)
            shared = total - len(unique)
            print(
                f"ablation {self.ablation.name}: {total} variants"
                + (f" ({shared} share another's config)" if shared else "")
                + f", {len(unique) - len(pending)} already finished, {len(pending)} to run "
                f"(profile {self.profile}, data {self.manifest})",
                flush=True,
            )
            # From the variants' own times: a shared first stage runs before any of them.
            spent = 0.0
            for position, (variant, code, error, seconds) in enumerate(
                self._train(pending, parent_run_id), start=1
            ):
                if code != 0:
                    failures.append((variant, error))
                spent += seconds
                remaining = spent / position * (len(pending) - position) / self.jobs
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
            self.runs.client.set_terminated(parent_run_id, status)
        return failures

    def log(self, variant: Variant) -> Path:
        """Where a variant's training output goes."""
        return self.reports / "logs" / f"{variant.name}.log"

    def _train(self, pending: list[Variant], parent_run_id: str) -> Iterator[tuple]:
        """Yield ``(variant, exit status, error, seconds)`` as variants finish."""
        jobs = []
        for variant in pending:
            tags = self.runs.child_tags(variant, parent_run_id)
            plan = self.stage1_plan(variant, parent_run_id)
            jobs.append(
                (variant, (self.fit_arguments(variant, tags), self.log(variant), plan, tags))
            )
        plans = [arguments[2] for _, arguments in jobs if arguments[2] is not None]
        failed_stages = run_shared_stages(plans, self.reports / "logs")
        for variant, arguments in [job for job in jobs if _failed(job, failed_stages)]:
            error = failed_stages[arguments[2].stage_hash]
            arguments[1].parent.mkdir(parents=True, exist_ok=True)
            arguments[1].write_text(error + "\n")  # the variant's log names the reason
            self.runs.mark_failed(variant, parent_run_id, error, time.time())
            yield variant, 1, error, 0.0
        jobs = [job for job in jobs if not _failed(job, failed_stages)]
        if self.jobs == 1 and self.launcher == "local":
            for variant, arguments in jobs:
                started = time.time()
                code, error, seconds = run_variant(*arguments)
                if code != 0:
                    self.runs.mark_failed(variant, parent_run_id, error, started)
                yield variant, code, error, seconds
            return
        # Separate processes (or Ray tasks), each with its share of the cores.
        started = time.time()
        share = share_of(self.jobs, self.ablation.resources.get(self.profile))
        if self.launcher == "ray":
            finished = run_on_ray(jobs, share, self.address)
        else:
            finished = run_in_processes(jobs, self.jobs, share)
        for variant, code, error, seconds in finished:
            if code != 0:
                self.runs.mark_failed(variant, parent_run_id, error, started)
            yield variant, code, error, seconds


def _failed(job: tuple[Variant, tuple], failed_stages: Mapping[str, str]) -> bool:
    """Whether a job's first stage is one that failed (its variant cannot train)."""
    plan = job[1][2]
    return plan is not None and plan.stage_hash in failed_stages
