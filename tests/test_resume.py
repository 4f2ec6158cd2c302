"""An ablation killed with SIGKILL mid-variant resumes that variant from its last checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from experiments.mlflow_search import PID_TAG
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def ablate(folder: Path, study: Path, manifest: Path) -> subprocess.CompletedProcess:
    """``versaseg ablate`` as its own process, as a user runs it (and as kill -9 ends it)."""
    command = [sys.executable, "-m", "experiments.cli", "ablate", str(study)]
    command += ["--profile", "smoke", "--data", str(manifest), "--set", "trainer.max_epochs=2"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)


def test_a_variant_killed_mid_training_resumes_into_the_same_run(in_tmp, phantom_manifest):
    killer = {"class_path": "tests.helpers.KillOnSecondEpoch", "init_args": {"marker": "k"}}
    study = in_tmp / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "resume",
                "experiment": "resume",
                "config": str(BASELINE),
                "seeds": [0],
                "grid": {"loss": {"ce": {"trainer.callbacks": [killer]}}},
            }
        )
    )
    killed = ablate(in_tmp, study, phantom_manifest)
    assert killed.returncode == -9, killed.stderr[-2000:]
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("resume").experiment_id

    def children() -> list[mlflow.entities.Run]:
        runs = client.search_runs([experiment])
        return [r for r in runs if r.data.tags.get("ablation_role") != "parent"]

    (first,) = children()
    assert first.info.status == "RUNNING"  # nobody could close it
    resumed = ablate(in_tmp, study, phantom_manifest)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "left RUNNING" in resumed.stdout
    (run,) = children()
    assert run.info.run_id == first.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["tested"] == "true"
    # The resuming process owns the run now: no other process may close it as dead.
    assert run.data.tags[PID_TAG] != first.data.tags[PID_TAG]
    # Epoch 0 came from the checkpoint: two validation points in all, not three.
    epochs = client.get_metric_history(run.info.run_id, "val/dice_mean")
    assert len(epochs) == 2
