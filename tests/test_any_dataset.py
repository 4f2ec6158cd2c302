"""Every thread on a dataset that is not the phantom: one `t1` channel, other structures.

The cohort (``tests/cohort.py``) has label values 2, 5, 7, float32 label files, a
thin ``duct`` and no ``split`` column.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from experiments.ablate import AblationRunner
from experiments.ablation_file import load_ablation
from experiments.cli import main
from experiments.tracking import default_tracking_uri
from tests.cohort import write_cohort
from tests.conftest import BASELINE

ABLATIONS = Path(__file__).resolve().parents[1] / "experiments" / "ablations"


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), 8)


def test_shipped_ablations_take_their_tasks_from_the_class_map(in_tmp, cohort):
    losses = AblationRunner(load_ablation(ABLATIONS / "losses.yaml"), manifest=str(cohort))
    tasks = {v.overrides["data.task"] for v in losses.variants}
    assert tasks == {"multiclass", "binary:gland", "binary:duct", "binary:lesion"}
    assert len(losses.variants) == 4 * 12
    skips = AblationRunner(load_ablation(ABLATIONS / "skips.yaml"), manifest=str(cohort))
    assert len(skips.variants) == 24


@pytest.mark.slow
def test_a_per_structure_ablation_runs_and_tabulates_on_the_cohort(in_tmp, cohort, capsys):
    study = {
        "name": "cohort",
        "config": str(BASELINE),
        "overrides": {"model.init_args.loss_options": {}, "data.test_fraction": 0.25},
        "grid": {
            "task": {"{structure}": {"data.task": "binary:{structure}"}},
            "loss": {"ce": {"model.init_args.loss": "ce"}},
        },
        "tables": {"rows": ["loss"], "task": "task"},
    }
    path = in_tmp / "cohort.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["ablate", str(path), "--profile", "smoke", "--data", str(cohort)]) == 0
    report = (in_tmp / "reports" / "cohort" / "report.md").read_text()
    for structure in ("gland", "duct", "lesion"):
        assert f"binary:{structure}" in report
    assert "cerebrum" not in report and "vessels" not in report


@pytest.mark.slow
def test_weak_labels_train_on_float_labels_with_the_described_thin_structure(in_tmp, cohort):
    status = main(
        [
            "fit",
            *("--config", str(BASELINE), "--profile", "smoke"),
            *("--data.manifest", str(cohort), "--data.weak_labels", "[sparse:2, noisy:mild]"),
        ]
    )
    assert status == 0
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("baseline")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["weak_label/labelled_fraction"] == pytest.approx(0.5, abs=0.05)
    assert "weak_label/dice_duct" in run.data.metrics
    draws = json.loads(
        Path(client.download_artifacts(run.info.run_id, "data/weak_label_draws.json")).read_text()
    )
    noisy = [draw for subject in draws.values() for draw in subject if draw["mode"] == "noisy"]
    assert noisy and all(draw["thin_labels"] == [5] for draw in noisy)  # the duct's label
    described = client.download_artifacts(run.info.run_id, "data/dataset.yaml")
    assert yaml.safe_load(Path(described).read_text())["channels"] == ["t1"]
