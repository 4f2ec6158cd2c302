"""``versaseg feature-maps compare``: one layer's feature maps of two runs, side by side.

Reads the ``feature_maps/epoch_XXX/<layer>.npz`` files that
``lightning_modules.feature_maps.FeatureMapSnapshots`` logged on each run, from
the MLflow store (``MLFLOW_TRACKING_URI`` or the local ``mlruns/``), and draws
each run's highest-energy channels in one PNG.

Run::

    versaseg feature-maps compare RUN_A RUN_B --layer encoder_1 [--epoch N] [--out PNG]
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException

from experiments.input_checks import CommandParser
from experiments.tracking import default_tracking_uri
from lightning_modules.feature_maps import ARTIFACT_ROOT, COLOUR_MAP, display_view, epoch_folder

EPOCH_FOLDER = re.compile(r"epoch_(\d+)$")
PANEL_INCHES = 1.6
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class FeatureMapError(ValueError):
    """A run, epoch or layer that the MLflow store does not hold."""


@dataclass(frozen=True)
class LoggedMaps:
    """One layer's logged snapshot of one run.

    Attributes:
        run_id: the MLflow run id.
        run_name: its name in the MLflow UI.
        network: its ``model.init_args.network`` param, if logged.
        epoch: the snapshot's epoch.
        layer: the layer name.
        maps: the kept channels' 2D maps ``(k, H, W)``.
        channels: their channel indices, highest energy first.
        shape: the layer's full shape ``(C, *spatial)``.
    """

    run_id: str
    run_name: str
    network: str | None
    epoch: int
    layer: str
    maps: np.ndarray
    channels: np.ndarray
    shape: tuple[int, ...]


def get_run(client: mlflow.MlflowClient, run_id: str) -> mlflow.entities.Run:
    """The run ``run_id``, or a FeatureMapError naming the store."""
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise FeatureMapError(
            f"no run {run_id!r} in the MLflow store {client.tracking_uri}"
        ) from error


def snapshot_epochs(client: mlflow.MlflowClient, run_id: str) -> list[int]:
    """Epochs with a feature-map snapshot on the run, ascending."""
    epochs = []
    for item in client.list_artifacts(run_id, ARTIFACT_ROOT):
        match = EPOCH_FOLDER.search(item.path)
        if item.is_dir and match:
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def snapshot_layers(client: mlflow.MlflowClient, run_id: str, epoch: int) -> list[str]:
    """Layers logged in the run's snapshot of ``epoch``, in name order."""
    return sorted(
        Path(item.path).stem
        for item in client.list_artifacts(run_id, epoch_folder(epoch))
        if item.path.endswith(".npz")
    )


def choose_epoch(client: mlflow.MlflowClient, run_ids: Sequence[str], epoch: int | None) -> int:
    """``epoch`` if every run logged it, else (``None``) the latest epoch they share."""
    per_run = {run_id: snapshot_epochs(client, run_id) for run_id in run_ids}
    for run_id, epochs in per_run.items():
        if not epochs:
            raise FeatureMapError(f"run {run_id} logged no feature maps (under {ARTIFACT_ROOT}/)")
    shared = sorted(set.intersection(*(set(epochs) for epochs in per_run.values())))
    listing = "; ".join(f"run {run_id[:8]}: {epochs}" for run_id, epochs in per_run.items())
    if epoch is None:
        if not shared:
            raise FeatureMapError(f"the runs share no snapshot epoch ({listing})")
        return shared[-1]
    if epoch not in shared:
        raise FeatureMapError(f"epoch {epoch} is not logged by both runs; epochs: {listing}")
    return epoch


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bars (one small file each) while the block runs."""
    previous = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[PROGRESS_BAR]
        else:
            os.environ[PROGRESS_BAR] = previous


def load_maps(
    client: mlflow.MlflowClient, run: mlflow.entities.Run, layer: str, epoch: int
) -> LoggedMaps:
    """Download and read one run's ``<layer>.npz`` of ``epoch``."""
    run_id = run.info.run_id
    layers = snapshot_layers(client, run_id, epoch)
    if layer not in layers:
        raise FeatureMapError(
            f"layer {layer!r} is not logged at epoch {epoch} by run {run_id}; "
            f"layers logged: {layers}"
        )
    with tempfile.TemporaryDirectory() as folder, quiet_downloads():
        path = client.download_artifacts(run_id, f"{epoch_folder(epoch)}/{layer}.npz", folder)
        with np.load(path) as arrays:
            maps, channels = arrays["maps"].astype(np.float32), arrays["channels"]
            shape = tuple(int(n) for n in arrays["shape"])
    return LoggedMaps(
        run_id=run_id,
        run_name=run.info.run_name or run_id,
        network=run.data.params.get("model.init_args.network"),
        epoch=epoch,
        layer=layer,
        maps=maps,
        channels=channels,
        shape=shape,
    )


def comparison_figure(left: LoggedMaps, right: LoggedMaps) -> Figure:
    """Each run's kept channels in a grid, the two grids side by side, channels labelled."""
    count = max(len(left.maps), len(right.maps))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    # The object API needs no pyplot backend: safe in headless runs.
    figure = Figure(
        figsize=(2 * columns * PANEL_INCHES, rows * PANEL_INCHES + 1.0), layout="constrained"
    )
    figure.suptitle(f"feature maps: {left.layer}")
    for subfigure, logged in zip(figure.subfigures(1, 2), (left, right), strict=True):
        network = f", {logged.network}" if logged.network else ""
        subfigure.suptitle(
            f"{logged.run_name} ({logged.run_id[:8]}{network})\nepoch {logged.epoch}, "
            f"top {len(logged.maps)} of {logged.shape[0]} channels by energy",
            fontsize="medium",
        )
        axes = subfigure.subplots(rows, columns, squeeze=False).ravel()
        for axis in axes:
            axis.set_axis_off()
        for axis, image, channel in zip(axes, logged.maps, logged.channels, strict=False):
            axis.imshow(display_view(image), cmap=COLOUR_MAP)  # each channel on its own scale
            axis.set_title(f"ch {channel}", fontsize="small")
    return figure


def compare(
    run_a: str,
    run_b: str,
    *,
    layer: str,
    epoch: int | None = None,
    out: Path | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """Draw ``layer`` of two runs at ``epoch`` (default: the latest they share); return the PNG.

    Raises:
        FeatureMapError: for an unknown run, or an epoch or layer not logged, with
            the epochs or layers that are.
    """
    client = mlflow.MlflowClient(tracking_uri or default_tracking_uri())
    runs = [get_run(client, run_id) for run_id in (run_a, run_b)]
    epoch = choose_epoch(client, [run.info.run_id for run in runs], epoch)
    left, right = (load_maps(client, run, layer, epoch) for run in runs)
    out = out or Path("reports/feature_maps") / f"{layer}_{run_a[:8]}_{run_b[:8]}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    comparison_figure(left, right).savefig(out, dpi=100)
    return out


def feature_maps_main(args: Sequence[str]) -> int:
    """``versaseg feature-maps compare``: parse the arguments, draw, print the PNG's path."""
    parser = CommandParser(
        prog="versaseg feature-maps",
        description="Feature maps that FeatureMapSnapshots logged on MLflow runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare_parser = commands.add_parser(
        "compare", help="one layer of two runs, side by side, as a PNG"
    )
    compare_parser.add_argument("run_a", help="MLflow run id")
    compare_parser.add_argument("run_b", help="MLflow run id")
    compare_parser.add_argument("--layer", required=True, help="e.g. encoder_1, residual_stream")
    compare_parser.add_argument("--epoch", type=int, help="default: the latest both runs logged")
    compare_parser.add_argument(
        "--out", type=Path, help="default: reports/feature_maps/<layer>_<run_a>_<run_b>.png"
    )
    options = parser.parse_args(args)
    path = compare(
        options.run_a, options.run_b, layer=options.layer, epoch=options.epoch, out=options.out
    )
    print(path)
    return 0
