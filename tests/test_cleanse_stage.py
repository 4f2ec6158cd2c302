"""Label cleansing end to end: stage 1's cohort on disk, and both stages of an ablation in MLflow.

On the non-phantom cohort (``tests/cohort.py``: one ``t1`` channel, label values 2, 5, 7,
float32 label files, no ``split`` column).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from datamodules.labels import read_label
from datamodules.manifest import read_manifest
from experiments.cli import main
from experiments.tracking import default_tracking_uri
from tests.cohort import DESCRIPTION, write_cohort
from tests.conftest import BASELINE, CONFIGS

CLEANSING = CONFIGS / "cleansing.yaml"
STAGE = ["--config", str(BASELINE), "--config", str(CLEANSING), "--profile", "smoke"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), 8)


def cleanse(cohort: Path, out: Path, method: str, *flags: str) -> int:
    data = ["--data.manifest", str(cohort), "--data.weak_labels", "[sparse:2]"]
    return main(["cleanse", "--method", method, "--output", str(out), *STAGE, *data, *flags])


@pytest.mark.slow
def test_stage_one_writes_a_cohort_with_the_inputs_affine_and_label_values(in_tmp, cohort):
    out = in_tmp / "cleansed"
    assert cleanse(cohort, out, "shape") == 0
    written = read_manifest(out / "manifest.csv", DESCRIPTION.channels)
    source = {r.subject: r for r in read_manifest(cohort, DESCRIPTION.channels)}
    table = pd.read_csv(out / "manifest.csv")
    assert set(table["split"]) == {"train", "val", "test"}
    assert yaml.safe_load((out / "dataset.yaml").read_text())["class_map"] == {
        2: "gland",
        5: "duct",
        7: "lesion",
    }
    trained = [r for r, split in zip(written, table["split"], strict=True) if split == "train"]
    assert trained
    for record in written:
        original = source[record.subject]
        assert record.channels["t1"] == original.channels["t1"]
        if record not in trained:
            assert record.label == original.label  # validation and test keep their truth
            continue
        assert record.label.parent == (out / "labels").resolve()
        image, truth_image = nib.load(record.label), nib.load(original.label)
        np.testing.assert_array_equal(image.affine, truth_image.affine)
        assert image.header.get_sform(coded=True)[1] == 1
        assert image.get_data_dtype() == np.uint8
        cleansed, truth = read_label(record.label), read_label(original.label)
        assert set(np.unique(cleansed)) <= {0, 2, 5, 7}
        # sparse:2 labels every other slice; those are kept exactly.
        kept = [(cleansed[..., z] == truth[..., z]).all() for z in range(truth.shape[2])]
        assert sum(kept) >= truth.shape[2] // 2
    quality = pd.read_csv(out / "label_quality.csv")
    assert set(quality["class"]) == {"gland", "duct", "lesion"}
    assert len(quality) == 3 * len(trained)
    assert quality.loc[quality["class"] == "gland", "dice"].min() > 0.9


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "flags", "message"),
    [
        ("network", ["--model.init_args.selection.stride", "100"], "stride 100 is larger than"),
        ("network", ["--model.init_args.selection.axis", "3"], "axis 3 does not exist"),
        ("shape", ["--data.weak_labels", "null"], "set data.weak_labels"),
    ],
)
def test_stage_one_refuses_bad_input_before_training(
    in_tmp, cohort, capsys, method, flags, message
):
    assert cleanse(cohort, in_tmp / "out", method, *flags) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error
    assert not (in_tmp / "out" / "manifest.csv").exists()


STUDY = {
    "name": "cleansing-test",
    "config": str(BASELINE),
    "stage1": {"config": str(CLEANSING)},
    "overrides": {"data.test_fraction": 0.25, "data.weak_label_seed": 0},
    "grid": {
        "labels": {"sparse_k2": {"data.weak_labels": ["sparse:2"]}},
        "method": {
            "nearest": {"stage1.method": "nearest"},
            "complementary": {
                "stage1.method": "network",
                "stage1.model.init_args.selection.folds": 2,
            },
            "ignore": {},
        },
    },
    "tables": {"rows": ["method"], "columns": "labels"},
}


@pytest.mark.slow
def test_both_stages_are_linked_in_mlflow_and_a_rerun_reuses_stage_one(in_tmp, cohort, capsys):
    path = in_tmp / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    command = ["ablate", str(path), "--profile", "smoke", "--data", str(cohort)]
    assert main(command) == 0
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("cleansing-test")  # the study's name
    runs = client.search_runs([experiment.experiment_id])
    stage1 = {r.data.tags["variant"]: r for r in runs if r.data.tags.get("stage") == "labels"}
    stage2 = {r.data.tags["variant"]: r for r in runs if r.data.tags.get("tested") == "true"}
    assert set(stage1) == {"sparse_k2-nearest", "sparse_k2-complementary"}
    assert set(stage2) == {"sparse_k2-nearest", "sparse_k2-complementary", "sparse_k2-ignore"}
    for name, first in stage1.items():
        second = stage2[name]
        assert first.info.status == "FINISHED"
        assert second.data.tags["upstream_run"] == first.info.run_id
        assert second.data.tags["mlflow.parentRunId"] == first.data.tags["mlflow.parentRunId"]
        # Stage 2 trained on exactly the cohort stage 1 wrote.
        fingerprint = first.data.tags["stage_output_fingerprint"]
        assert second.data.tags["manifest_fingerprint"] == fingerprint
        assert second.data.params["data.weak_labels"] in ("None", "null")
        artifacts = {a.path for a in client.list_artifacts(first.info.run_id, "stage_output")}
        assert {"stage_output/manifest.csv", "stage_output/labels"} <= artifacts
        labels = client.list_artifacts(first.info.run_id, "stage_output/labels")
        assert len(labels) == first.data.metrics["stage/subjects"]
        assert "labels/dice_gland" in first.data.metrics
    assert "upstream_run" not in stage2["sparse_k2-ignore"].data.tags
    report = (in_tmp / "reports" / "cleansing-test" / "report.md").read_text()
    assert "Stage 1: training-label quality" in report
    assert (in_tmp / "reports" / "cleansing-test" / "labels_sparse_k2.png").stat().st_size > 0

    # Stage 2 of one variant failed: the rerun trains it again on the stage 1 it had.
    client.set_terminated(stage2["sparse_k2-nearest"].info.run_id, "FAILED")
    capsys.readouterr()
    assert main(command) == 0
    assert "1 to run" in capsys.readouterr().out
    runs = client.search_runs([experiment.experiment_id])
    assert sum(r.data.tags.get("stage") == "labels" for r in runs) == 2
    log = (in_tmp / "reports" / "cleansing-test" / "logs" / "sparse_k2-nearest.log").read_text()
    assert f"reusing run {stage1['sparse_k2-nearest'].info.run_id}" in log
