"""Ablation grids on Ray: the same variants, runs and tables as the local process pool."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from experiments.cli import main
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE

pytestmark = pytest.mark.slow
GRID = {
    "weighting": {
        "none": {"model.init_args.loss_weighting": "none"},
        "inverse": {"model.init_args.loss_weighting": "inverse"},
    }
}


def ablate_with(launcher: str, folder: Path, manifest: Path) -> pd.DataFrame:
    """The two-variant smoke ablation, two jobs at once, in ``folder``; its summary table."""
    study = folder / "grid.yaml"
    content = {"name": "grid", "experiment": "grid", "config": str(BASELINE), "grid": GRID}
    content["resources"] = {"smoke": {"cpus": 1}}  # each job: one core, one torch thread
    study.write_text(yaml.safe_dump(content))
    arguments = ["ablate", str(study), "--profile", "smoke", "--data", str(manifest)]
    assert main([*arguments, "--jobs", "2", "--launcher", launcher]) == 0
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("grid").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * 3  # the parent and two children
    return pd.read_csv(folder / "reports" / "grid" / "summary.csv")


def refuse_local_pool(*args: object, **kwargs: object) -> None:
    raise AssertionError("the local process pool ran under --launcher ray")


def test_ray_and_the_local_pool_give_the_same_tables(
    in_tmp: Path, phantom_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = {}
    for launcher in ("local", "ray"):
        folder = in_tmp / launcher
        folder.mkdir()
        monkeypatch.chdir(folder)  # each launcher its own store and reports
        if launcher == "ray":  # prove the tasks ran on Ray, not in the local pool
            monkeypatch.setattr("experiments.ablate.run_in_processes", refuse_local_pool)
        tables[launcher] = ablate_with(launcher, folder, phantom_manifest)
    assert len(tables["ray"]) > 0
    pd.testing.assert_frame_equal(tables["local"], tables["ray"])


def test_an_address_without_ray_is_refused(in_tmp: Path, phantom_manifest: Path, capsys) -> None:
    study = in_tmp / "grid.yaml"
    study.write_text(yaml.safe_dump({"name": "g", "config": str(BASELINE), "grid": GRID}))
    arguments = ["ablate", str(study), "--data", str(phantom_manifest), "--address", "h:1"]
    assert main(arguments) == 2
    assert "versaseg: error: --address h:1 needs --launcher ray" in capsys.readouterr().err
