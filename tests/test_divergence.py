"""A training loss that becomes NaN stops the run as FAILED with the reason (any thread)."""

from __future__ import annotations

import mlflow
import pytest

from experiments.cli import main
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE


@pytest.mark.slow
def test_a_diverging_segmentation_run_ends_failed_not_finished(in_tmp, phantom_manifest, capsys):
    command = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
    command += ["--data.manifest", str(phantom_manifest), "--trainer.max_epochs", "3"]
    command += ["--model.init_args.optimizer.init_args.lr", "1e6", "--test_after_fit", "true"]
    assert main(command) == 1
    assert "training diverged: epoch" in capsys.readouterr().err
    client = mlflow.MlflowClient(default_tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("baseline").experiment_id])
    assert run.info.status == "FAILED"
    assert "NonFiniteLossError" in run.data.tags["error"]
    assert "training loss is nan" in run.data.tags["error"]
    assert "tested" not in run.data.tags  # no test results of NaN weights
