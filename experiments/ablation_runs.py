"""The MLflow runs of one ablation: its experiment, parent run and child runs.

One parent run per ablation, profile, data and ``--set`` settings; one child per
variant, found again by its ``config_hash`` tag so that a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow

from experiments.ablation_file import Variant
from experiments.mlflow_search import close_dead_runs, literal, owner_tags
from experiments.mlflow_ui import NOTE_TAG, describe_experiment
from experiments.run_notes import variant_note
from experiments.tracking import (
    CHECKPOINT_TAG,
    LOCAL_ARTIFACT_ROOT,
    default_tracking_uri,
    is_local_store,
)


class AblationRuns:
    """Find, create and close an ablation's parent and child runs in the MLflow store."""

    def __init__(
        self,
        *,
        ablation: str,
        experiment: str,
        profile: str,
        manifest: str,
        settings: Mapping[str, Any],
        dataset: Mapping[str, Any],
        axes: Sequence[str] = (),
        base_config: str = "",
    ) -> None:
        self.ablation = ablation
        self.experiment = experiment
        self.profile = profile
        self.manifest = manifest
        self.settings = dict(settings)
        self.dataset = dict(dataset)
        self.axes = list(axes)
        self.base_config = base_config
        self.client = mlflow.MlflowClient(default_tracking_uri())
        self._experiment_id: str | None = None

    @property
    def scope_hash(self) -> str:
        """A digest of the ``--set`` settings and the dataset description.

        One parent run per ablation, profile, manifest and scope: two descriptions of
        one manifest, or two sets of settings, never share (and overwrite) tables.
        """
        scope = {"settings": self.settings, "dataset": self.dataset}
        encoded = json.dumps(scope, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:12]

    def experiment_id(self) -> str:
        """The ablation's MLflow experiment, created on first use."""
        if self._experiment_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment)
            if experiment is not None:
                self._experiment_id = experiment.experiment_id
            else:
                location = None
                if is_local_store(default_tracking_uri()):
                    location = str((LOCAL_ARTIFACT_ROOT / self.experiment).resolve())
                self._experiment_id = self.client.create_experiment(
                    self.experiment, artifact_location=location
                )
            describe_experiment(self.client, self._experiment_id, self.axes)
        return self._experiment_id

    def search(self, query: str, **options: Any) -> list[mlflow.entities.Run]:
        """This ablation's runs that match ``query`` (an MLflow filter string)."""
        ablation = f"tags.ablation = {literal(self.ablation)}"
        return self.client.search_runs(
            [self.experiment_id()], f"{ablation} and {query}" if query else ablation, **options
        )

    def find_parent(self) -> str | None:
        """The id of the ablation's parent run for this profile and data, if there is one."""
        found = self.search(
            f"tags.ablation_role = 'parent' and tags.profile = {literal(self.profile)} "
            f"and tags.scope_hash = '{self.scope_hash}'",
            order_by=["attributes.start_time ASC"],
        )
        # Compared here, not in the filter: a path may hold any quote character.
        manifest = str(Path(self.manifest).resolve())
        found = [run for run in found if run.data.tags.get("manifest") == manifest]
        return found[0].info.run_id if found else None

    def parent_run(self) -> str:
        """The ablation's parent run for this profile and data, created once, now RUNNING.

        Runs that a killed process left RUNNING on this machine are closed first.
        """
        closed = close_dead_runs(self.client)
        if closed:
            print(f"marked {closed} run(s) left RUNNING by a process that has gone KILLED")
        run_id = self.find_parent()
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            for key, value in owner_tags().items():
                self.client.set_tag(run_id, key, value)
            return run_id
        run = self.client.create_run(
            self.experiment_id(),
            run_name=f"{self.ablation}-{self.profile}",
            tags={
                "ablation": self.ablation,
                "ablation_role": "parent",
                "profile": self.profile,
                "manifest": str(Path(self.manifest).resolve()),
                "scope_hash": self.scope_hash,
                "settings": json.dumps(self.settings, sort_keys=True, default=str)[:5000],
                "thread": self.experiment,
                **owner_tags(),
            },
        )
        return run.info.run_id

    def child_tags(self, variant: Variant, parent_run_id: str) -> dict[str, str]:
        """The tags that make a run a child of the ablation and name its variant."""
        return {
            "mlflow.parentRunId": parent_run_id,
            "ablation": self.ablation,
            "variant": variant.name,
            "config_hash": variant.config_hash,
            **{f"axis.{axis}": value for axis, value in variant.axes.items()},
        }

    def finished_runs(self, hashes: Collection[str]) -> dict[str, mlflow.entities.Run]:
        """config hash -> the newest FINISHED and tested child run of each of ``hashes``.

        A run only counts once its test has been logged (tag ``tested``): fit
        marks a run FINISHED before the test runs.
        """
        runs = self.search(
            "attributes.status = 'FINISHED' and tags.tested = 'true'",
            order_by=["attributes.start_time ASC"],
        )
        return {
            run.data.tags["config_hash"]: run
            for run in runs
            if run.data.tags.get("config_hash") in hashes
        }

    def latest_outcomes(self, hashes: Collection[str]) -> dict[str, tuple[str, str]]:
        """config hash -> (status, error tag) of the newest child run of each of ``hashes``."""
        runs = self.search("", order_by=["attributes.start_time ASC"])  # children carry a hash
        return {
            run.data.tags["config_hash"]: (run.info.status, run.data.tags.get("error", ""))
            for run in runs
            if run.data.tags.get("config_hash") in hashes
        }

    def resume_arguments(self, variant: Variant) -> list[str]:
        """``fit`` flags continuing a variant's KILLED run from its last checkpoint, or [].

        A variant killed mid-training (``kill -9``, a lost machine) then resumes into the
        same MLflow run from its last epoch, not from epoch 0.
        """
        runs = self.search(
            f"tags.config_hash = {literal(variant.config_hash)} and attributes.status = 'KILLED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        folder = runs[0].data.tags.get(CHECKPOINT_TAG) if runs else None
        if folder is None or not (Path(folder) / "last.ckpt").is_file():
            return []
        return [
            "--ckpt_path", str(Path(folder) / "last.ckpt"),
            "--trainer.logger.init_args.run_id", runs[0].info.run_id,
        ]  # fmt: skip

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
        note = variant_note(
            ablation=self.ablation,
            variant=variant.name,
            profile=self.profile,
            seed=variant.seed,
            base_config=self.base_config,
            overrides=variant.overrides,
            error=message,
        )
        if runs:
            run = runs[0]
            if run.info.status != "FAILED":
                self.client.set_terminated(run.info.run_id, "FAILED")
            if "error" not in run.data.tags:
                self.client.set_tag(run.info.run_id, "error", message)
            self.client.set_tag(run.info.run_id, NOTE_TAG, note)
            return
        tags = {**self.child_tags(variant, parent_run_id), "error": message, NOTE_TAG: note}
        run = self.client.create_run(self.experiment_id(), run_name=variant.name, tags=tags)
        self.client.set_terminated(run.info.run_id, "FAILED")
