"""The pseudo-image thread end to end on a cohort that is not the phantom.

``tests/cohort.py --t2``: channels ``t1`` and ``t2``, the translation pair ``t1 -> t2``,
label values 2, 5, 7 with a thin ``duct``, no ``split`` column. Stage 1 (``versaseg
translate``) writes ``pseudo_t2`` for every subject; segmentation reads it as a channel.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from datamodules.dataset import load_description
from experiments.cli import main
from experiments.tracking import default_tracking_uri
from lightning_modules.pix2pix import Pix2PixModule
from tests.cohort import write_cohort
from tests.conftest import BASELINE, CONFIGS

TRANSLATION = CONFIGS / "translation.yaml"
STAGE = ["--config", str(BASELINE), "--config", str(TRANSLATION), "--profile", "smoke"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), 8, t2=True)


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory, cohort: Path) -> dict:
    """One smoke translation; the subjects of every training batch the generator saw."""
    folder = tmp_path_factory.mktemp("translated")
    seen: list[str] = []
    original = Pix2PixModule.training_step

    def recording(self, batch, batch_idx):
        seen.extend(batch["subject"])
        return original(self, batch, batch_idx)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setattr(Pix2PixModule, "training_step", recording)
        data = ["--data.manifest", str(cohort), "--trainer.limit_train_batches", "4"]
        code = main(["translate", "--output", str(folder / "out"), *STAGE, *data])
        uri = default_tracking_uri()
    return {"code": code, "out": folder / "out", "seen": seen, "uri": uri, "folder": folder}


@pytest.mark.slow
def test_every_subject_gets_a_pseudo_image_on_its_source_grid(translated, cohort):
    assert translated["code"] == 0
    out = translated["out"]
    table = pd.read_csv(out / "manifest.csv")
    assert list(table.columns) == ["subject", "t1", "t2", "pseudo_t2", "label", "split"]
    assert set(table["split"]) == {"train", "val", "test"}
    description = load_description(out / "manifest.csv")
    assert description.channels == ("t1", "t2", "pseudo_t2")
    assert description.translation.source == ("t1",) and description.translation.target == "t2"
    assert description.class_map == {2: "gland", 5: "duct", 7: "lesion"}
    for row in table.itertuples():
        source = nib.load(out / row.t1)
        generated = nib.load(out / row.pseudo_t2)
        assert generated.shape == source.shape
        np.testing.assert_allclose(generated.affine, source.affine)
        assert int(generated.header["qform_code"]) == 1 and int(generated.header["sform_code"]) == 1
        np.testing.assert_allclose(generated.get_qform(), source.affine)
        assert generated.get_data_dtype() == np.float32
        assert np.isfinite(generated.get_fdata()).all()
    quality = pd.read_csv(out / "translation_quality.csv")
    assert set(quality["split"]) == {"train", "val", "test"}
    assert np.isfinite(quality[["mae", "psnr", "ssim"]].to_numpy()).all()


@pytest.mark.slow
def test_no_validation_or_test_subject_reaches_generator_training(translated):
    table = pd.read_csv(translated["out"] / "manifest.csv")
    held_out = set(table.loc[table["split"] != "train", "subject"])
    trained = set(table.loc[table["split"] == "train", "subject"])
    assert translated["seen"], "no training batch was recorded"
    assert set(translated["seen"]) <= trained
    assert not set(translated["seen"]) & held_out


@pytest.mark.slow
def test_the_stage_run_is_tagged_with_its_output_and_logs_pictures(translated):
    client = mlflow.MlflowClient(translated["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("pseudo").experiment_id])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["stage"] == "images" and tags["stage_complete"] == "true"
    assert tags["translation_method"] == "pix2pix"
    assert Path(tags["stage_output"]) == (translated["out"] / "manifest.csv").resolve()
    for metric in ("test/mae", "test/psnr", "test/ssim", "val/mae", "translation/ssim_test"):
        assert np.isfinite(run.data.metrics[metric])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "translation")}
    assert "translation/epoch_000.png" in artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "stage_output")} >= {
        "stage_output/manifest.csv",
        "stage_output/translation_quality.csv",
    }


@pytest.mark.slow
def test_segmentation_reads_the_pseudo_channel_like_any_other(translated, monkeypatch):
    monkeypatch.chdir(translated["folder"])  # the store the translation wrote to
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    manifest = translated["out"] / "manifest.csv"
    command = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
    command += ["--data.manifest", str(manifest), "--data.channels", "[t1, pseudo_t2]"]
    command += ["--data.task", "binary:duct", "--test_after_fit", "true"]
    assert main(command) == 0
    client = mlflow.MlflowClient(translated["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("baseline").experiment_id])
    assert yaml.safe_load(run.data.params["data.channels"]) == ["t1", "pseudo_t2"]
    assert run.data.tags["tested"] == "true"


@pytest.mark.slow
def test_a_diverging_gan_ends_failed_with_the_reason(in_tmp, cohort, capsys):
    command = ["translate", "--output", str(in_tmp / "out"), *STAGE]
    command += ["--data.manifest", str(cohort), "--model.init_args.l1_weight", ".inf"]
    assert main(command) == 1
    error = capsys.readouterr().err
    assert "training diverged: epoch 0, step 0: generator loss is infinite" in error
    client = mlflow.MlflowClient(default_tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("pseudo").experiment_id])
    assert run.info.status == "FAILED"
    assert "NonFiniteLossError" in run.data.tags["error"]
    assert not (in_tmp / "out" / "manifest.csv").exists()


def test_translate_refuses_data_without_a_translation_pair(in_tmp, capsys):
    manifest = write_cohort(in_tmp / "t1only", 4)  # one channel, no pair
    command = [
        "translate",
        "--output",
        str(in_tmp / "out"),
        *STAGE,
        "--data.manifest",
        str(manifest),
    ]
    assert main(command) == 2
    assert "pix2pix needs source and target channels" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_generates_from_the_source_alone_with_a_checkpoint(translated, cohort, monkeypatch):
    monkeypatch.chdir(translated["folder"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = mlflow.MlflowClient(translated["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("pseudo").experiment_id])
    pattern = f"mlruns/checkpoints/*/{run.info.run_id}/checkpoints/best-*.ckpt"
    (checkpoint,) = translated["folder"].glob(pattern)
    out = translated["folder"] / "predicted"
    command = ["predict", *STAGE, "--data.manifest", str(cohort), "--data.channels", "[t1]"]
    command += ["--ckpt_path", str(checkpoint), "--prediction_writer.output_dir", str(out)]
    assert main(command) == 0  # no t2 read: a generator is used where none was acquired
    written = sorted(path.name for path in out.iterdir())
    assert written == [f"case{index:02d}_pseudo_t2.nii.gz" for index in range(8)]
    source = nib.load(cohort.parent / "case00" / "t1.nii.gz")
    generated = nib.load(out / "case00_pseudo_t2.nii.gz")
    np.testing.assert_allclose(generated.affine, source.affine)
    assert generated.shape == source.shape
