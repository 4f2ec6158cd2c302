"""End to end through the ``versaseg`` CLI on a tiny phantom, with the smoke profile.

These runs train for real (a few seconds each) and check what lands in MLflow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.fit import apply_profile
from experiments.tracking import default_tracking_uri
from lightning_modules.metrics import METRICS
from tests.conftest import BASELINE

pytestmark = pytest.mark.slow

STRUCTURES = ("cerebrum", "cerebellum", "brainstem", "vessels")


def fit(manifest: Path, *extra: str) -> int:
    config = ["--config", str(BASELINE), "--profile", "smoke"]
    return main(["fit", *config, "--data.manifest", str(manifest), *extra])


def only_run(experiment: str = "baseline") -> mlflow.entities.Run:
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def artifact_paths(run: mlflow.entities.Run, folder: str = "") -> set[str]:
    client = mlflow.MlflowClient(default_tracking_uri())
    paths: set[str] = set()
    for item in client.list_artifacts(run.info.run_id, folder or None):
        if item.is_dir:
            paths |= artifact_paths(run, item.path)
        else:
            paths.add(item.path)
    return paths


def test_fit_then_test_leaves_a_finished_run_with_everything(in_tmp, phantom_manifest, capsys):
    assert fit(phantom_manifest, "--test_after_fit", "true") == 0
    run = only_run()
    assert run.info.status == "FINISHED"

    params = run.data.params
    assert params["data.manifest"] == str(phantom_manifest)
    assert params["model.init_args.network"] == "unet"
    assert params["trainer.max_epochs"] == "1"  # from the smoke profile
    assert params["seed_everything"] == "42"
    # Post-processing: the classes the best checkpoint's validation chose, or none.
    assert params["model.init_args.postprocessing"] == "True"
    keep_largest = params["postprocessing.keep_largest"]
    assert keep_largest == "none" or set(keep_largest.split(",")) <= set(STRUCTURES)

    tags = run.data.tags
    assert tags["thread"] == "baseline"
    assert len(tags["manifest_fingerprint"]) == 16
    assert tags["git_commit"]
    assert tags["tested"] == "true"

    metrics = run.data.metrics
    expected = {"train/loss", "val/loss", "val/dice_mean", "test/dice_mean"}
    for name in STRUCTURES:
        expected |= {f"val/dice_{name}", f"test/dice_{name}", f"test/hd95_{name}"}
        expected.add(f"test/assd_{name}")
        expected |= {f"postprocessing/keep_largest_{name}", f"test/hd95_raw_{name}"}
    assert expected <= set(metrics)
    assert 0.0 <= metrics["test/dice_cerebrum"] <= 1.0
    chosen = {name for name in STRUCTURES if metrics[f"postprocessing/keep_largest_{name}"]}
    assert all(metrics[f"postprocessing/keep_largest_{name}"] in (0.0, 1.0) for name in STRUCTURES)
    assert chosen == (set() if keep_largest == "none" else set(keep_largest.split(",")))
    # Two smoke steps, so the probe ran after each: the curve is reached in epochs.
    assert metrics["stability/epochs_to_95pct"] in (0.5, 1.0)
    probes = mlflow.MlflowClient(default_tracking_uri()).get_metric_history(
        run.info.run_id, "probe/dice_mean"
    )
    assert [p.step for p in probes] == [1, 2]
    assert all(0.0 <= p.value <= 1.0 for p in probes)
    # Where the training time went, on this machine and data.
    assert 0.0 <= metrics["perf/data_wait_share"] <= 1.0
    assert 0.0 < metrics["perf/step_seconds"] < 60.0
    assert 0.1 < metrics["perf/peak_memory_gib"] < 24.0

    artifacts = artifact_paths(run)
    assert "config.yaml" in artifacts
    assert "metrics/per_case_metrics.csv" in artifacts
    assert any(p.startswith("figures/prediction_") and p.endswith(".png") for p in artifacts)
    assert any(p.endswith(".ckpt") for p in artifacts)

    local = Path(
        mlflow.MlflowClient(default_tracking_uri()).download_artifacts(
            run.info.run_id, "metrics/per_case_metrics.csv", str(in_tmp)
        )
    )
    per_case = pd.read_csv(local)
    assert list(per_case.columns) == ["subject", "class", *METRICS, "dice_raw", "hd95_raw"]
    assert list(per_case["class"]) == list(STRUCTURES)
    assert per_case["dice"].mean() == pytest.approx(
        np.mean([metrics[f"test/dice_{name}"] for name in STRUCTURES])
    )
    printed = capsys.readouterr().out
    assert "Test metrics per class" in printed
    assert f"largest connected component kept: {keep_largest}" in printed
    assert run.info.run_id in printed


def test_a_run_that_raises_is_recorded_as_failed(in_tmp, phantom_manifest):
    with pytest.raises(RuntimeError, match="deliberate failure"):
        fit(phantom_manifest, "--trainer.callbacks+=tests.helpers.FailOnTrainStart")
    run = only_run()
    assert run.info.status == "FAILED"
    assert "deliberate failure" in run.data.tags["error"]
    assert "error.txt" in artifact_paths(run)


def test_an_interrupted_run_is_recorded_as_killed(in_tmp, phantom_manifest):
    with pytest.raises(SystemExit):
        fit(phantom_manifest, "--trainer.callbacks+=tests.helpers.InterruptOnTrainStart")
    assert only_run().info.status == "KILLED"


def test_resume_continues_the_same_run_from_the_last_checkpoint(in_tmp, phantom_manifest):
    assert fit(phantom_manifest) == 0
    run = only_run()
    experiment = run.info.experiment_id
    last = in_tmp / "mlruns/checkpoints" / experiment / run.info.run_id / "checkpoints/last.ckpt"
    assert last.is_file()
    resumed = fit(
        phantom_manifest,
        "--ckpt_path",
        str(last),
        "--trainer.max_epochs",
        "2",
        "--trainer.logger.init_args.run_id",
        run.info.run_id,
    )
    assert resumed == 0
    run = only_run()
    assert run.info.status == "FINISHED"
    client = mlflow.MlflowClient(default_tracking_uri())
    epochs = [m.value for m in client.get_metric_history(run.info.run_id, "val/dice_mean")]
    assert len(epochs) == 2


def test_predict_writes_label_maps_with_the_input_affine(in_tmp, phantom_manifest):
    assert fit(phantom_manifest) == 0
    run = only_run()
    checkpoint = next((in_tmp / "mlruns/checkpoints").rglob("last.ckpt"))
    out = in_tmp / "predicted"
    status = main(
        [
            "predict",
            "--config",
            str(BASELINE),
            "--profile",
            "smoke",
            "--data.manifest",
            str(phantom_manifest),
            "--ckpt_path",
            str(checkpoint),
            "--prediction_writer.output_dir",
            str(out),
        ]
    )
    assert status == 0
    assert only_run().info.run_id == run.info.run_id  # predicting starts no MLflow run
    manifest = pd.read_csv(phantom_manifest)
    written = sorted(out.glob("*_label.nii.gz"))
    assert [p.name for p in written] == [f"{s}_label.nii.gz" for s in manifest["subject"]]
    source = nib.load(phantom_manifest.parent / manifest["cisternography"][0])
    predicted = nib.load(written[0])
    assert predicted.shape == source.shape
    np.testing.assert_allclose(predicted.affine, source.affine)
    np.testing.assert_allclose(predicted.header.get_zooms(), source.header.get_zooms())
    assert int(predicted.header["sform_code"]) == 1
    assert set(np.unique(np.asarray(predicted.dataobj))) <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("command", "checkpoint", "message"),
    [
        ("predict", None, "predict needs --ckpt_path: the checkpoint of a trained run"),
        ("predict", "nowhere.ckpt", "--ckpt_path nowhere.ckpt: no such checkpoint file"),
        ("test", "nowhere.ckpt", "--ckpt_path nowhere.ckpt: no such checkpoint file"),
    ],
)
def test_a_missing_checkpoint_is_one_clear_error(
    in_tmp, phantom_manifest, capsys, command, checkpoint, message
):
    # Predicting without one wrote label maps from random weights and exited 0.
    arguments = [command, "--config", str(BASELINE), "--profile", "smoke"]
    arguments += ["--data.manifest", str(phantom_manifest)]
    arguments += ["--prediction_writer.output_dir", "out"] if command == "predict" else []
    arguments += ["--ckpt_path", checkpoint] if checkpoint else []
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert any(line.startswith(f"versaseg: error: {message}") for line in error.splitlines())
    assert "Traceback" not in error
    assert not Path("out").exists()
    client = mlflow.MlflowClient(default_tracking_uri())
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_bad_manifest_gives_one_clear_error_and_no_run(in_tmp, phantom_manifest, capsys):
    table = pd.read_csv(phantom_manifest)
    table.loc[2, "label"] = "phantom_002/missing.nii.gz"
    for column in ("cisternography", "angiography"):
        table[column] = [str(phantom_manifest.parent / p) for p in table[column]]
    table.loc[[0, 1, 3, 4, 5], "label"] = [
        str(phantom_manifest.parent / p) for p in table.loc[[0, 1, 3, 4, 5], "label"]
    ]
    table.to_csv("broken.csv", index=False)
    shutil.copy(phantom_manifest.parent / "dataset.yaml", ".")
    assert fit(Path("broken.csv")) == 2
    error = capsys.readouterr().err
    assert "versaseg: error: Manifest 'broken.csv': subject 'phantom_002'" in error
    assert "phantom_002" in error and "missing.nii.gz" in error and "does not exist" in error
    assert "Traceback" not in error
    # checked before any MLflow run starts
    client = mlflow.MlflowClient(default_tracking_uri())
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_bad_config_value_gives_one_clear_error(in_tmp, phantom_manifest, capsys):
    assert fit(phantom_manifest, "--model.init_args.network", "resnet") == 2
    error = capsys.readouterr().err
    assert "unknown network 'resnet'" in error
    assert "Traceback" not in error


def test_profiles_are_inserted_after_the_first_config(tmp_path):
    args = apply_profile(["fit", "--config", "a.yaml", "--profile", "smoke", "--x", "1"])
    assert args[:3] == ["fit", "--config", "a.yaml"]
    assert args[3] == "--config" and args[4].endswith("profiles/smoke.yaml")
    assert args[5:] == ["--x", "1"]
    assert apply_profile(["fit"])[2].endswith("profiles/quick.yaml")
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text("profile: smoke\ntrainer:\n  max_epochs: 3\n")
    assert apply_profile(["fit", "--config", str(resolved)]) == ["fit", "--config", str(resolved)]
    forced = apply_profile(["fit", "--config", str(resolved), "--profile", "paper"])
    assert forced[4].endswith("profiles/paper.yaml")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        apply_profile(["fit", "--profile", "huge"])


def test_phantom_command_writes_a_manifest(in_tmp, capsys):
    status = main(["phantom", "--subjects", "2", "--out", "cohort", "--shape", "32", "32", "24"])
    assert status == 0
    table = pd.read_csv("cohort/manifest.csv")
    assert list(table["subject"]) == ["phantom_000", "phantom_001"]
    assert "2/2 subjects" in capsys.readouterr().out


def test_logged_config_reproduces_the_run(in_tmp, phantom_manifest):
    """The config.yaml a run logs, run again, gives the same numbers (same machine)."""
    class_map = "{1: cerebrum, 2: cerebellum, 3: brainstem, 4: vessels}"
    assert fit(phantom_manifest, "--data.class_map", class_map, "--trainer.max_epochs", "2") == 0
    client = mlflow.MlflowClient(default_tracking_uri())
    first = only_run()
    config = client.download_artifacts(first.info.run_id, "config.yaml", str(in_tmp))
    assert main(["fit", "--config", config]) == 0
    experiment = first.info.experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    assert runs[1].data.params["trainer.max_epochs"] == "2"
    assert runs[1].data.params["profile"] == "smoke"
    for name in ("train/loss", "val/loss", "val/dice_cerebrum", "val/dice_vessels"):
        assert runs[0].data.metrics[name] == runs[1].data.metrics[name], name


def test_ui_serves_the_runs_on_localhost(in_tmp, phantom_manifest):
    """`versaseg ui` (what `make ui` runs) serves this folder's store on 127.0.0.1."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    assert fit(phantom_manifest) == 0
    run_id = only_run().info.run_id
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "experiments.cli", "ui", "--port", str(port)]
    # A session of its own, so that the server and its workers can be stopped together.
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={run_id}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    payload = json.load(response)
                break
            except OSError:
                assert server.poll() is None, "the UI server exited"
                assert time.monotonic() < deadline, "the UI did not answer within 60 s"
                time.sleep(0.5)
        assert payload["run"]["info"]["status"] == "FINISHED"
        assert payload["run"]["info"]["experiment_id"] == only_run().info.experiment_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_loss_needing_distance_maps_is_a_clear_config_error(in_tmp, phantom_manifest, capsys):
    status = fit(phantom_manifest, "--model.init_args.loss_weighting", "dpt")
    assert status == 2
    error = capsys.readouterr().err
    assert "needs distance maps: set data.distance_maps: true" in error
    assert "Traceback" not in error
    client = mlflow.MlflowClient(default_tracking_uri())
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_phantom_and_help_run_without_torch_or_lightning(tmp_path):
    """The commands that do not train import neither (about 9 s of a phantom's 16 s)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from experiments.cli import main\n"
        "assert main(['--help']) == 0\n"
        f"assert main(['phantom', '--subjects', '1', '--out', {str(tmp_path / 'p')!r}]) == 0\n"
        "print(sorted({'torch', 'lightning', 'mlflow'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "p" / "manifest.csv").is_file()
