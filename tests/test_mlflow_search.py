"""Filter literals, quoted manifest paths, and runs whose process died closed as KILLED."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from experiments.ablation_runs import AblationRuns
from experiments.cli import main
from experiments.mlflow_search import (
    DEAD_RUN_ERROR,
    HOST_TAG,
    PID_TAG,
    close_dead_runs,
    literal,
    owner_tags,
)
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE


def dead_pid() -> int:
    """The id of a process that has just ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_literals_use_the_quote_the_value_lacks() -> None:
    assert literal("plain") == "'plain'"
    assert literal("o'brien") == '"o\'brien"'
    assert literal('say "hi"') == "'say \"hi\"'"
    with pytest.raises(ValueError, match="both quote characters"):
        literal('o\'brien "x"')


def test_a_manifest_path_with_a_quote_finds_its_parent_again(in_tmp: Path) -> None:
    # The filter was built by interpolation: a quote in the path broke the search.
    runs = {
        "ablation": "study",
        "experiment": "losses",
        "profile": "smoke",
        "manifest": str(in_tmp / 'o\'brien "cohort"' / "manifest.csv"),
        "settings": {},
        "dataset": {},
    }
    first = AblationRuns(**runs).parent_run()
    assert AblationRuns(**runs).find_parent() == first
    other = AblationRuns(**{**runs, "manifest": str(in_tmp / "other.csv")})
    assert other.find_parent() is None


def test_runs_of_a_dead_process_on_this_host_are_closed_as_killed(in_tmp: Path) -> None:
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.create_experiment("baseline")
    host = socket.gethostname()

    def running(host: str, pid: int) -> str:
        return client.create_run(experiment, tags={HOST_TAG: host, PID_TAG: str(pid)}).info.run_id

    dead, alive, elsewhere = running(host, dead_pid()), running(host, 1), running("far", 1)
    mine = running(host, dead_pid())
    assert close_dead_runs(client, keep=mine) == 1
    assert client.get_run(dead).info.status == "KILLED"
    assert client.get_run(dead).data.tags["error"] == DEAD_RUN_ERROR
    for run_id in (alive, elsewhere, mine):
        assert client.get_run(run_id).info.status == "RUNNING"


@pytest.mark.slow
def test_the_next_fit_closes_a_run_left_running_by_a_killed_fit(
    in_tmp: Path, phantom_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.create_experiment("baseline")
    tags = {**owner_tags(), PID_TAG: str(dead_pid())}
    stale = client.create_run(experiment, tags=tags).info.run_id
    arguments = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
    assert main([*arguments, "--data.manifest", str(phantom_manifest)]) == 0
    assert client.get_run(stale).info.status == "KILLED"
    assert (
        "marked 1 run(s) left RUNNING by a process that has gone KILLED" in capsys.readouterr().out
    )
    runs = client.search_runs([experiment], "attributes.status = 'FINISHED'")
    assert [r.data.tags[PID_TAG] for r in runs] == [owner_tags()[PID_TAG]]
