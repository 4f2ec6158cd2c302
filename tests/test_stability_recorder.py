"""The stability probe: which slices it takes, how often, and that it leaves training alone."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pytest
import torch

from experiments.cli import main
from experiments.stability_recorder import PROBE_DICE, StabilityRecorder
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE


def label_with_foreground(first: int, last: int, depth: int = 40) -> torch.Tensor:
    label = torch.zeros(1, 8, 8, depth, dtype=torch.long)
    label[0, 2:5, 2:5, first : last + 1] = 1
    return label


def test_2d_probe_spaces_its_slices_over_the_foreground():
    recorder = StabilityRecorder(points=20, slices_per_case=4)
    chosen = recorder._slices(label_with_foreground(10, 28), SimpleNamespace(spatial_dims=2), None)
    assert chosen.tolist() == [10, 16, 22, 28]


def test_3d_probe_takes_a_slab_of_the_patch_depth_around_the_foreground():
    recorder = StabilityRecorder(points=20, slices_per_case=4)
    data = SimpleNamespace(patch_size=(16, 16, 8))
    chosen = recorder._slices(label_with_foreground(30, 39), SimpleNamespace(spatial_dims=3), data)
    assert chosen.tolist() == list(range(30, 38))  # centred at 34, kept inside the volume


def test_a_label_without_foreground_is_probed_anywhere():
    recorder = StabilityRecorder(points=20, slices_per_case=3)
    empty = torch.zeros(1, 8, 8, 9, dtype=torch.long)
    assert recorder._slices(empty, SimpleNamespace(spatial_dims=2), None).tolist() == [0, 4, 8]


@pytest.mark.parametrize("options", [{"points": -1}, {"slices_per_case": 0}])
def test_options_out_of_range_are_refused(options):
    with pytest.raises(ValueError, match="must be"):
        StabilityRecorder(**options)


@pytest.mark.slow
def test_probing_gives_the_curve_its_points_and_changes_no_training_draw(in_tmp, phantom_manifest):
    client = mlflow.MlflowClient(default_tracking_uri())
    curves = {}
    for points in ("0", "6"):
        args = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
        args += ["--data.manifest", str(phantom_manifest), "--trainer.max_epochs", "3"]
        args += ["--stability_recorder.points", points]
        args += ["--trainer.logger.init_args.run_name", f"points-{points}"]
        assert main(args) == 0
        run = client.search_runs(
            [client.get_experiment_by_name("baseline").experiment_id],
            f"attributes.run_name = 'points-{points}'",
        )[0]
        probes = client.get_metric_history(run.info.run_id, PROBE_DICE)
        # 3 epochs of 2 smoke steps: 6 steps over 6 points, one probe per step.
        assert [p.step for p in sorted(probes, key=lambda p: p.step)] == (
            [1, 2, 3, 4, 5, 6] if points == "6" else []
        )
        curves[points] = [
            (m.step, m.value)
            for name in ("train/loss", "val/dice_mean", "test/dice_mean")
            for m in client.get_metric_history(run.info.run_id, name)
        ]
    assert curves["0"] == curves["6"]
