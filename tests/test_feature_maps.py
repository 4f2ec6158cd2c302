"""Feature-map snapshots: named layers, the callback on a tiny fit, and ``feature-maps compare``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch
from matplotlib.image import imread

from experiments.cli import main
from experiments.tracking import default_tracking_uri
from lightning_modules.feature_maps import (
    FeatureMapSnapshots,
    mosaic,
    snapshot_input,
    summarise,
)
from lightning_modules.networks import build_network
from lightning_modules.networks.feature_layers import capture_features
from tests.conftest import BASELINE, TINY_SHAPE

ENCODERS = ["encoder_0", "encoder_1", "encoder_2"]
DECODERS = ["decoder_1", "decoder_0"]
SKIPS = ["skip_1", "skip_0"]
BASE = 4


def build(name: str, spatial_dims: int = 2) -> torch.nn.Module:
    network = build_network(
        name, spatial_dims=spatial_dims, in_channels=2, out_channels=3, depth=3, base_channels=BASE
    )
    return network.eval()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fcn", [*ENCODERS, *DECODERS]),
        ("unet", [*ENCODERS, *SKIPS, *DECODERS]),
        ("frrn", [*ENCODERS, "residual_stream", *DECODERS]),
        ("hybrid", [*ENCODERS, *SKIPS, "residual_stream", *DECODERS]),
    ],
)
def test_each_network_names_its_layers_by_level(name, expected):
    assert list(build(name).feature_layers()) == expected


@pytest.mark.parametrize("name", ["fcn", "unet", "frrn", "hybrid"])
@pytest.mark.parametrize("size", [(32, 32), (16, 16, 8)], ids=["2d", "3d"])
def test_captured_maps_sit_at_their_levels_resolution(name, size):
    network = build(name, len(size))
    layers = network.feature_layers()
    with torch.no_grad(), capture_features(layers) as maps:
        network(torch.randn(1, 2, *size))
    assert set(maps) == set(layers)
    for layer, features in maps.items():
        level = 0 if layer == "residual_stream" else int(layer.rsplit("_", 1)[1])
        assert features.shape[2:] == tuple(s // 2**level for s in size), layer
    if name in ("frrn", "hybrid"):
        assert maps["residual_stream"].shape[1:] == (BASE, *size)  # full resolution, last state
    if name == "unet":  # the decoder's input: skip and up-sampled map, concatenated
        assert maps["skip_1"].shape[1] == 2 * 2 * BASE
        torch.testing.assert_close(maps["skip_1"][:, : 2 * BASE], maps["encoder_1"])
    # the hooks are gone afterwards
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in network.modules())


def test_summary_counts_dead_channels_and_ranks_channels_by_energy():
    values = [0.0, 1.0, 3.0, -2.0, 1e-7]  # channel 0 is silent, channel 4 below tolerance
    features = torch.tensor(values).view(5, 1, 1).expand(5, 2, 2).clone()
    summary = summarise(features, channels=3)
    assert summary.dead_share == pytest.approx(2 / 5)
    assert summary.mean_abs == pytest.approx(sum(abs(v) for v in values) / 5)
    assert list(summary.channels) == [2, 3, 1]
    np.testing.assert_allclose(summary.energy, [9.0, 4.0, 1.0])
    assert summary.maps.shape == (3, 2, 2) and summary.shape == (5, 2, 2)


def test_summary_of_a_volume_keeps_each_channels_middle_slice():
    features = torch.arange(5.0).view(1, 1, 1, 5).expand(2, 3, 3, 5)
    assert np.all(summarise(features, channels=2).maps == 2.0)


def test_summary_subsamples_large_maps_but_not_the_statistics():
    features = torch.zeros(1, 300, 200)
    features[0, 0, 0] = 1.0
    summary = summarise(features, channels=1, max_pixels=128)
    assert summary.maps.shape == (1, 100, 67)  # every third pixel
    assert summary.mean_abs == pytest.approx(1 / 60000)
    assert summary.shape == (1, 300, 200)


def test_mosaic_scales_each_tile_on_its_own_and_separates_them():
    maps = np.stack([np.arange(16.0).reshape(4, 4), 100 * np.ones((4, 4)), -np.eye(4)])
    grid = mosaic(maps, tile=8)  # 2 x 2 tiles of 4 x 4 enlarged twice, 1-pixel gaps
    assert grid.shape == (17, 17)
    assert np.isnan(grid[8]).all() and np.isnan(grid[:, 8]).all()
    first, constant, third = grid[:8, :8], grid[:8, 9:], grid[9:, :8]
    assert (first.min(), first.max()) == (0.0, 1.0)
    assert (third.min(), third.max()) == (0.0, 1.0)
    assert np.all(constant == 0.0)
    assert np.isnan(grid[9:, 9:]).all()  # no fourth map


@pytest.mark.parametrize(
    ("image_shape", "spatial_dims", "patch", "expected"),
    [
        ((2, 10, 12, 7), 2, None, (1, 2, 10, 12)),  # a volume gives its middle slice
        ((2, 10, 12, 7), 3, (4, 6, 30), (1, 2, 4, 6, 7)),  # a centred crop, clipped
        ((2, 10, 12), 2, (4, 4), (1, 2, 10, 12)),  # already a slice: taken whole
    ],
)
def test_snapshot_input_is_cut_from_the_validation_image(
    image_shape, spatial_dims, patch, expected
):
    image = torch.arange(float(np.prod(image_shape))).view(image_shape)
    cut = snapshot_input(image, spatial_dims, patch)
    assert cut.shape == expected
    if spatial_dims == 2 and len(image_shape) == 4:
        torch.testing.assert_close(cut[0], image[..., 3])
    if spatial_dims == 3:
        torch.testing.assert_close(cut[0], image[:, 3:7, 3:9, :])


def test_unknown_layer_names_are_refused_with_the_known_ones():
    module = SimpleNamespace(network=build("fcn"))
    with pytest.raises(ValueError, match=r"\['skip_0'\] are not layers of FCN.*encoder_0"):
        FeatureMapSnapshots(layers=["encoder_0", "skip_0"]).check_model(module)
    FeatureMapSnapshots(layers=["encoder_0"]).check_model(module)
    with pytest.raises(ValueError, match="every_n_epochs must be at least 1, got 0"):
        FeatureMapSnapshots(every_n_epochs=0)


def test_without_an_mlflow_logger_nothing_is_read_or_computed():
    class NoData:
        def val_dataloader(self):
            raise AssertionError("the callback read data without an MLflow logger")

    trainer = SimpleNamespace(loggers=[], is_global_zero=True, datamodule=NoData(), current_epoch=0)
    callback = FeatureMapSnapshots(every_n_epochs=1)
    module = SimpleNamespace(network=build("unet"))
    callback.on_fit_start(trainer, module)
    callback.on_train_epoch_end(trainer, module)
    callback.on_train_end(trainer, module)
    assert callback.seconds == []


# ------------------------------------------------------------ end to end, tiny fits
@pytest.fixture(scope="module")
def two_runs(phantom_manifest, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Two 2-epoch smoke fits (unet, hybrid) in a scratch MLflow store: network -> run id.

    ``every_n_epochs`` 5 snapshots epoch 0 by the schedule and epoch 1 as the last epoch.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("feature_maps"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for network in ("unet", "hybrid"):
            status = main(
                [
                    "fit",
                    *("--config", str(BASELINE), "--profile", "smoke"),
                    *("--data.manifest", str(phantom_manifest)),
                    *("--trainer.max_epochs", "2", "--feature_maps.every_n_epochs", "5"),
                    *("--model.init_args.network", network),
                    *("--model.init_args.network_options", "{depth: 2, base_channels: 4}"),
                    *("--trainer.logger.init_args.run_name", network),
                ]
            )
            assert status == 0
        client = mlflow.MlflowClient(default_tracking_uri())
        runs = client.search_runs([client.get_experiment_by_name("baseline").experiment_id])
        yield {run.info.run_name: run.info.run_id for run in runs}


@pytest.mark.slow
def test_fit_logs_pngs_arrays_and_metrics_per_layer_and_epoch(two_runs, tmp_path):
    client = mlflow.MlflowClient(default_tracking_uri())
    run_id = two_runs["unet"]
    layers = ["encoder_0", "encoder_1", "skip_0", "decoder_0"]  # depth 2, as the fixture trains
    for epoch in ("epoch_000", "epoch_001"):
        logged = {item.path for item in client.list_artifacts(run_id, f"feature_maps/{epoch}")}
        expected = {
            f"feature_maps/{epoch}/{layer}.{ext}" for layer in layers for ext in ("png", "npz")
        }
        assert logged == expected

    for layer in layers:
        mean_abs = client.get_metric_history(run_id, f"feature_maps/{layer}/mean_abs")
        dead_share = client.get_metric_history(run_id, f"feature_maps/{layer}/dead_share")
        assert sorted(m.step for m in mean_abs) == sorted(m.step for m in dead_share) == [0, 1]
        assert all(m.value > 0.0 for m in mean_abs)
        assert all(0.0 <= m.value <= 1.0 for m in dead_share)
    assert client.get_run(run_id).data.metrics["feature_maps/snapshot_seconds"] > 0

    png = imread(
        client.download_artifacts(run_id, "feature_maps/epoch_001/skip_0.png", str(tmp_path))
    )
    assert png.ndim == 3 and png.shape[2] == 4 and min(png.shape[:2]) >= TINY_SHAPE[0]
    npz = client.download_artifacts(run_id, "feature_maps/epoch_001/encoder_0.npz", str(tmp_path))
    with np.load(npz) as arrays:
        maps, energy = arrays["maps"], arrays["energy"]
        assert maps.dtype == np.float16
        assert maps.shape == (4, *TINY_SHAPE[:2])  # all 4 channels, whole middle slice
        assert list(arrays["shape"]) == [4, *TINY_SHAPE[:2]]
        assert sorted(arrays["channels"]) == [0, 1, 2, 3]
        assert np.all(np.diff(energy) <= 0)
        np.testing.assert_allclose(energy, (maps.astype(np.float64) ** 2).mean((1, 2)), rtol=1e-2)


@pytest.mark.slow
def test_compare_draws_one_layer_of_two_runs_side_by_side(two_runs, capsys):
    unet, hybrid = two_runs["unet"], two_runs["hybrid"]
    assert main(["feature-maps", "compare", unet, hybrid, "--layer", "encoder_0"]) == 0
    out = Path("reports/feature_maps") / f"encoder_0_{unet[:8]}_{hybrid[:8]}.png"
    assert capsys.readouterr().out.strip() == str(out)
    image = imread(out)
    assert image.shape[1] > image.shape[0]  # two grids next to each other

    explicit = Path("compare.png")
    args = ["feature-maps", "compare", unet, hybrid, "--layer", "skip_0", "--epoch", "0"]
    assert main([*args, "--out", str(explicit)]) == 0
    assert explicit.is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message", "listing"),
    [
        (
            ["--layer", "residual_stream"],
            "layer 'residual_stream' is not logged at epoch 1 by run",
            "layers logged: ['decoder_0', 'encoder_0', 'encoder_1', 'skip_0']",
        ),
        (
            ["--layer", "encoder_0", "--epoch", "7"],
            "epoch 7 is not logged by both runs",
            "epochs: run {unet}: [0, 1]; run {hybrid}: [0, 1]",
        ),
    ],
)
def test_compare_reports_what_is_missing_and_what_exists(two_runs, capsys, args, message, listing):
    unet, hybrid = two_runs["unet"], two_runs["hybrid"]
    assert main(["feature-maps", "compare", unet, hybrid, *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"versaseg: error: {message}")
    assert error.rstrip().endswith(listing.format(unet=unet[:8], hybrid=hybrid[:8]))
    assert "Traceback" not in error


@pytest.mark.slow
def test_compare_reports_an_unknown_run(two_runs, capsys):
    assert main(["feature-maps", "compare", two_runs["unet"], "nope", "--layer", "encoder_0"]) == 2
    assert "versaseg: error: no run 'nope' in the MLflow store" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_refuses_a_layer_the_network_lacks(in_tmp, phantom_manifest, capsys):
    args = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
    args += ["--data.manifest", str(phantom_manifest), "--feature_maps.layers", "[residual_stream]"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "['residual_stream'] are not layers of UNet" in error and "skip_0" in error


@pytest.mark.slow
def test_snapshots_do_not_change_what_training_learns(in_tmp, phantom_manifest):
    client = mlflow.MlflowClient(default_tracking_uri())
    curves = {}
    for enabled in ("true", "false"):
        args = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
        args += ["--data.manifest", str(phantom_manifest), "--trainer.max_epochs", "3"]
        args += ["--feature_maps.every_n_epochs", "1", "--feature_maps.enabled", enabled]
        args += ["--trainer.logger.init_args.run_name", enabled]
        assert main(args) == 0
        run = client.search_runs(
            [client.get_experiment_by_name("baseline").experiment_id],
            f"attributes.run_name = '{enabled}'",
        )[0]
        assert any(k.startswith("feature_maps/") for k in run.data.metrics) == (enabled == "true")
        curves[enabled] = [
            (m.step, m.value)
            for name in ("train/loss", "val/dice_mean")
            for m in client.get_metric_history(run.info.run_id, name)
        ]
    assert curves["true"] == curves["false"]
