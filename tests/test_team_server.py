"""A team MLflow server: a smoke ablation with two parallel jobs, logged over HTTP.

The test starts ``mlflow server`` on 127.0.0.1 (SQLite backend, ``--serve-artifacts``)
as a team would, points ``MLFLOW_TRACKING_URI`` at it, and checks that no run is lost
or doubled and that artifacts are stored by the server, not as paths on this machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from experiments.cli import main
from tests.conftest import BASELINE
from tests.servers import free_port, wait_until_healthy

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The address of a fresh ``mlflow server`` on 127.0.0.1, stopped afterwards."""
    port = free_port()
    folder = tmp_path / "server"
    folder.mkdir()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--serve-artifacts"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(address, process, folder / "server.log")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_parallel_ablation_against_a_team_server(
    server: str, tmp_path: Path, phantom_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    study = work / "team.yaml"
    grid = {
        "weighting": {
            "none": {"model.init_args.loss_weighting": "none"},
            "inverse": {"model.init_args.loss_weighting": "inverse"},
        }
    }
    study.write_text(
        yaml.safe_dump(
            {"name": "team", "experiment": "team", "config": str(BASELINE), "grid": grid}
        )
    )
    arguments = ["ablate", str(study), "--profile", "smoke", "--data", str(phantom_manifest)]
    assert main([*arguments, "--jobs", "2"]) == 0

    client = mlflow.MlflowClient(server)
    experiment = client.get_experiment_by_name("team")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("ablation_role") != "parent"]
    assert sorted(r.data.tags["variant"] for r in children) == ["inverse", "none"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in children:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        local = client.download_artifacts(run.info.run_id, "metrics/per_case_metrics.csv", ".")
        assert len(pd.read_csv(local)) > 0
    assert not (work / "mlruns" / "mlflow.db").exists()  # nothing went to a local store
    # A rerun finds both variants on the server: nothing trains twice.
    assert main(arguments) == 0
    assert len(client.search_runs([experiment.experiment_id])) == len(runs)
