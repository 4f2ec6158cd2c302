"""The pseudo-image study: its grid on any dataset, one shared translation, failures."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from experiments.ablate import AblationRunner
from experiments.ablation_file import AblationError, load_ablation
from experiments.cli import main
from experiments.tracking import default_tracking_uri
from tests.cohort import write_cohort
from tests.conftest import BASELINE, CONFIGS

PSEUDO = Path(__file__).resolve().parents[1] / "experiments" / "ablations" / "pseudo.yaml"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), 8, t2=True)


def test_the_study_fills_in_the_datasets_channels_and_thin_structures(in_tmp, cohort):
    study = AblationRunner(load_ablation(PSEUDO), manifest=str(cohort))
    names = [v.name for v in study.variants]
    assert names == [
        f"{task}-{inputs}"
        for task in ("multiclass", "duct")
        for inputs in ("source", "source_pseudo", "pseudo", "source_target")
    ]
    channels = {v.name: v.overrides["data.channels"] for v in study.variants}
    assert channels["duct-source"] == ["t1"]
    assert channels["duct-source_pseudo"] == ["t1", "pseudo_t2"]
    assert channels["duct-pseudo"] == ["pseudo_t2"]
    assert channels["duct-source_target"] == ["t1", "t2"]
    assert study.variant("duct-pseudo").overrides["data.task"] == "binary:duct"
    # Stage 1 ignores the variants' channels and task: one translation for all eight.
    assert len({study.stage1_output(v)[0] for v in study.variants}) == 1
    first = study._layers(study.variant("duct-pseudo"), 1)["method"]
    assert "data.channels" not in first and "data.task" not in first
    assert first["data.test_fraction"] == 0.5


def test_a_dataset_without_a_translation_pair_is_refused_by_name(in_tmp):
    manifest = write_cohort(in_tmp / "t1only", 4)
    with pytest.raises(AblationError, match=r"\['\{source\}'\] stand for the translation pair"):
        AblationRunner(load_ablation(PSEUDO), manifest=str(manifest))


def test_stage1_ignores_must_be_data_keys(in_tmp):
    study = yaml.safe_load(PSEUDO.read_text())
    study["stage1"]["ignores"] = ["model.x"]
    path = in_tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(AblationError, match="must list data keys"):
        load_ablation(path)


# Two translations (one diverges) x two input sets: each translation is shared by two
# variants, so it runs once, before them; the diverging one fails its two variants with
# the reason and the other two train.
STUDY = {
    "name": "pseudo-test",
    "experiment": "pseudo-test",
    "config": str(BASELINE),
    "stage1": {"config": str(CONFIGS / "translation.yaml"), "ignores": ["data.channels"]},
    "overrides": {"stage1.method": "pix2pix", "data.task": "binary:duct"},
    "grid": {
        "gan": {"stable": {}, "diverging": {"stage1.model.init_args.l1_weight": float("inf")}},
        "inputs": {
            "source": {"data.channels": ["{source}"]},
            "source_pseudo": {"data.channels": ["{source}", "{pseudo}"]},
        },
    },
    "tables": {"rows": ["gan", "inputs"]},
}


@pytest.mark.slow
def test_a_diverging_translation_fails_its_variants_once_and_the_study_goes_on(
    in_tmp, cohort, capsys
):
    path = in_tmp / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    command = ["ablate", str(path), "--profile", "smoke", "--data", str(cohort)]
    assert main(command) == 1  # some variants failed
    out = capsys.readouterr().out
    assert out.count("shared by 2 variants") == 2
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("pseudo-test").experiment_id])
    translations = [r for r in runs if r.data.tags.get("ablation_role") == "stage1"]
    assert sorted(r.info.status for r in translations) == ["FAILED", "FINISHED"]
    children = {
        r.data.tags["variant"]: r
        for r in runs
        if r.data.tags.get("ablation_role") != "stage1" and "variant" in r.data.tags
    }
    for name in ("diverging-source", "diverging-source_pseudo"):
        assert children[name].info.status == "FAILED"
        assert "generator loss is infinite" in children[name].data.tags["error"]
    stable = next(r for r in translations if r.info.status == "FINISHED")
    for name in ("stable-source", "stable-source_pseudo"):
        assert children[name].info.status == "FINISHED"
        assert children[name].data.tags["upstream_run"] == stable.info.run_id
    report = (in_tmp / "reports" / "pseudo-test" / "report.md").read_text()
    assert "Stage 1: generated images against the real target" in report
    assert (in_tmp / "reports" / "pseudo-test" / "segmentation_duct.png").stat().st_size > 0
