"""Lightning DDP on two CPU processes (gloo): the same kind of run as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest

from datamodules.brain import BrainDataModule
from datamodules.distributed import QueueSampler
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_ddp_fit_and_test_give_one_run_with_every_test_case_once(in_tmp, phantom_manifest):
    command = [sys.executable, "-m", "experiments.cli", "fit", "--config", str(BASELINE)]
    command += ["--profile", "smoke", "--data.manifest", str(phantom_manifest)]
    command += ["--data.test_fraction", "0.5", "--test_after_fit", "true"]
    command += ["--trainer.limit_test_batches", "1.0"]  # smoke tests one case per process
    command += ["--trainer.strategy", "ddp", "--trainer.devices", "2"]
    command += ["--trainer.accelerator", "cpu"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # one core per process
    done = subprocess.run(command, cwd=in_tmp, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Test metrics per class") == 1  # printed by rank 0 alone

    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("baseline").experiment_id
    (run,) = client.search_runs([experiment])  # rank 1 wrote no run of its own
    assert run.info.status == "FINISHED" and run.data.tags["tested"] == "true"

    data = BrainDataModule(str(phantom_manifest), test_fraction=0.5, patch_size=(32, 32))
    data.load("fit")
    test_subjects = sorted(r.subject for r in data.records["test"])
    assert len(test_subjects) >= 2  # so that both processes test some
    local = client.download_artifacts(run.info.run_id, "metrics/per_case_metrics.csv", ".")
    cases = pd.read_csv(local)
    assert sorted(cases["subject"].unique()) == test_subjects
    assert not cases.duplicated(["subject", "class"]).any()  # gathered, each case once
    dice = cases[cases["class"] != "background"].groupby("class", sort=False)["dice"].mean()
    assert run.data.metrics["test/dice_mean"] == pytest.approx(dice.mean(), abs=1e-6)

    folders = list((in_tmp / "mlruns" / "checkpoints").glob("*/*/checkpoints"))
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir())[-1] == "last.ckpt"
    assert len(list(folders[0].iterdir())) == 2  # the best and the last, once


@pytest.mark.parametrize("world_size", [2, 3])
def test_the_training_queue_shards_subjects_across_processes(phantom_manifest, world_size):
    shards = []
    for rank in range(world_size):
        data = BrainDataModule(str(phantom_manifest), patch_size=(32, 32), split_seed=0)
        data.load("fit")
        data.trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        loader = data.train_dataloader()
        queue = loader.dataset
        assert isinstance(loader.sampler, QueueSampler)  # Lightning keeps it in place
        loader.sampler.set_epoch(3)
        assert queue.subject_sampler.epoch == 3  # a new shuffle every epoch
        subjects = queue.subjects_dataset
        shards.append({subjects[i]["subject"] for i in queue.subject_sampler})
        queue.subject_sampler.set_epoch(0)
        assert len(queue) == len(queue.subject_sampler) * data.samples_per_volume
    training = {r.subject for r in data.records["train"]}
    assert set().union(*shards) == training
    assert sum(len(shard) for shard in shards) <= len(training) + world_size - 1  # padding only
