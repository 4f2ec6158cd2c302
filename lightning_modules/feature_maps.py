"""``FeatureMapSnapshots``: what the network's named layers compute, epoch by epoch.

At chosen epochs one fixed validation input (the middle slice of the first
validation volume in 2D, a centred patch of it in 3D) goes through the network
with hooks on its named layers (``network.feature_layers()``; see
``lightning_modules.networks.feature_layers``). Per layer the MLflow run gets,
under ``feature_maps/epoch_XXX/``:

- ``<layer>.png``: a mosaic of the channels with the most activation energy,
  each scaled to its own range (3D: each channel's middle slice along the last axis);
- ``<layer>.npz``: those channels' maps as float16 (the same 2D views, array
  axes as the network sees them), their indices and energies, the layer's shape
  and statistics;

and the metrics ``feature_maps/<layer>/mean_abs`` and ``feature_maps/<layer>/dead_share``
at step = epoch. ``versaseg feature-maps compare`` draws one layer of two runs side by side.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.image import imsave
from torch import nn

from datamodules.contract import SegmentationData
from lightning_modules.networks.feature_layers import FeatureLayer, capture_features

ARTIFACT_ROOT = "feature_maps"
# A channel whose largest |activation| on the snapshot input is at most this is dead.
# A ReLU channel that never fires gives exact zeros; the tolerance absorbs rounding,
# and it is far below the order-one activations that normalisation layers produce.
DEAD_TOLERANCE = 1e-6
# Small maps (deep levels) are enlarged by a whole factor to about this many pixels a tile.
TILE_PIXELS = 64
# Larger maps are subsampled by a whole factor to at most this many pixels a side before
# they are kept: snapshots are for looking at, and full-size slices of real scans would
# make the PNG and array files, and their writing, several times dearer.
MAX_MAP_PIXELS = 128
COLOUR_MAP = "magma"


@dataclass(frozen=True)
class LayerSummary:
    """One layer's statistics and its highest-energy channels.

    Attributes:
        mean_abs: mean absolute activation over all channels and voxels.
        dead_share: share of channels with no activation above ``DEAD_TOLERANCE``.
        channels: indices of the kept channels, highest energy first.
        energy: their energy, the mean squared activation.
        maps: their 2D views ``(k, H, W)`` (3D: the middle slice along the last axis),
            subsampled to at most ``MAX_MAP_PIXELS`` a side.
        shape: the layer's full shape ``(C, *spatial)``.
    """

    mean_abs: float
    dead_share: float
    channels: np.ndarray
    energy: np.ndarray
    maps: np.ndarray
    shape: tuple[int, ...]


def summarise(
    features: torch.Tensor, channels: int, *, max_pixels: int = MAX_MAP_PIXELS
) -> LayerSummary:
    """Statistics of one layer's maps ``(C, *spatial)`` and its ``channels`` top-energy maps.

    The statistics use the full maps; only the kept 2D views are subsampled.
    """
    flat = features.flatten(1)
    energy = flat.square().mean(1)
    dead = flat.abs().amax(1) <= DEAD_TOLERANCE
    top = torch.argsort(energy, descending=True)[:channels]
    maps = features[top]
    if maps.ndim == 4:
        maps = maps[..., maps.shape[-1] // 2]
    step = math.ceil(max(maps.shape[1:]) / max_pixels)
    maps = maps[:, ::step, ::step]
    return LayerSummary(
        mean_abs=float(flat.abs().mean()),
        dead_share=float(dead.float().mean()),
        channels=top.numpy(),
        energy=energy[top].numpy(),
        maps=maps.numpy(),
        shape=tuple(features.shape),
    )


def display_view(slice_2d: np.ndarray) -> np.ndarray:
    """A 2D map ``(x, y)`` of RAS+ data shown as ``experiments.figures`` does: anterior up."""
    return np.flipud(slice_2d.T)


def normalise(image: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] by its own range; a constant map gives zeros."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return ((image - low) / (high - low)).astype(np.float32)


def mosaic(maps: np.ndarray, *, tile: int = TILE_PIXELS) -> np.ndarray:
    """Tile 2D maps ``(k, H, W)`` in a near-square grid, each scaled on its own.

    Tiles are shown anterior up, enlarged by a whole factor to about ``tile``
    pixels, and separated by one NaN pixel (transparent in the PNG).
    """
    views = [normalise(display_view(m)) for m in maps]
    height, width = views[0].shape
    zoom = max(1, tile // max(height, width))
    height, width = height * zoom, width * zoom
    columns = math.ceil(math.sqrt(len(views)))
    rows = math.ceil(len(views) / columns)
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan, np.float32)
    for index, view in enumerate(views):
        row, column = divmod(index, columns)
        top, left = row * (height + 1), column * (width + 1)
        grid[top : top + height, left : left + width] = view.repeat(zoom, 0).repeat(zoom, 1)
    return grid


def epoch_folder(epoch: int) -> str:
    """The artifact folder of one epoch's snapshot, ``feature_maps/epoch_XXX``."""
    return f"{ARTIFACT_ROOT}/epoch_{epoch:03d}"


def write_layer(folder: Path, name: str, summary: LayerSummary) -> None:
    """Write ``<name>.png`` (the mosaic) and ``<name>.npz`` (the arrays) into ``folder``."""
    # imsave writes the array's pixels directly: no figure, so it stays cheap.
    imsave(folder / f"{name}.png", mosaic(summary.maps), cmap=COLOUR_MAP, vmin=0.0, vmax=1.0)
    np.savez_compressed(
        folder / f"{name}.npz",
        maps=summary.maps.astype(np.float16),
        channels=summary.channels.astype(np.int32),
        energy=summary.energy.astype(np.float32),
        shape=np.asarray(summary.shape, dtype=np.int64),
        mean_abs=np.float32(summary.mean_abs),
        dead_share=np.float32(summary.dead_share),
    )


def snapshot_input(
    image: torch.Tensor, spatial_dims: int, patch_size: tuple[int, ...] | None = None
) -> torch.Tensor:
    """The network input ``(1, C, *spatial)`` cut from one image ``(C, *spatial)``.

    In 2D a volume ``(C, H, W, D)`` gives its middle slice along the last axis
    (the 2D networks' slice axis) and a slice ``(C, H, W)`` is taken whole. In 3D
    the input is a centred crop of ``patch_size`` (the whole volume without
    one): a training-sized patch bounds the snapshot's cost.
    """
    if spatial_dims == 2:
        return (image if image.ndim == 3 else image[..., image.shape[-1] // 2]).unsqueeze(0)
    spatial = image.shape[1:]
    patch = spatial if patch_size is None else patch_size
    crop = tuple(
        slice(max(s - p, 0) // 2, max(s - p, 0) // 2 + p)
        for p, s in zip(patch, spatial, strict=True)
    )
    return image[(slice(None), *crop)].unsqueeze(0)


def first_validation_image(datamodule: SegmentationData) -> torch.Tensor:
    """``batch["image"][0]`` of the first validation batch."""
    loader = datamodule.val_dataloader()
    try:
        # One item through the loader's own collate: no worker processes started for it.
        batch = loader.collate_fn([loader.dataset[0]])
    except (TypeError, IndexError, NotImplementedError):
        batch = next(iter(loader))
    return batch["image"][0]


def mlflow_logger(trainer: pl.Trainer) -> MLFlowLogger | None:
    """The trainer's first MLflow logger, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)


class FeatureMapSnapshots(pl.Callback):
    """Log feature maps and their statistics of a fixed validation input at chosen epochs.

    Snapshots are taken at the end of epochs 0, ``every_n_epochs``, ``2 * every_n_epochs``,
    ... and of the last epoch, with the network in eval mode. Without an MLflow
    logger the callback does nothing (not even reading the input).

    Args:
        every_n_epochs: epochs between snapshots. At the default, 5, snapshots took
            1.3 % of a quick-profile run's training time on a 2-core CPU (0.16 s
            each against 4.2 s an epoch; ``benchmarks/feature_map_cost.py``); the
            budget is 5 %.
        layers: names from ``network.feature_layers()``; ``None`` takes all.
        channels: channels kept per layer (in the PNG and the array file), by energy.
        enabled: ``False`` switches snapshots off.

    Example:
        >>> trainer = pl.Trainer(callbacks=[FeatureMapSnapshots(layers=["encoder_0"])])
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        layers: list[str] | None = None,
        *,
        channels: int = 16,
        enabled: bool = True,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs!r}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels!r}")
        self.every_n_epochs = every_n_epochs
        self.layers = None if layers is None else list(layers)
        self.channels = channels
        self.enabled = enabled
        self.seconds: list[float] = []  # wall time of each snapshot, to check the cost
        self._input: torch.Tensor | None = None
        self._last_epoch: int | None = None
        self._last_snapshot: int | None = None

    def selected_layers(self, network: nn.Module) -> dict[str, FeatureLayer]:
        """The hook points to snapshot, in the network's order.

        Raises:
            ValueError: for a name the network does not have, listing the known ones.
        """
        known = network.feature_layers()
        if self.layers is None:
            return known
        unknown = [name for name in self.layers if name not in known]
        if unknown:
            raise ValueError(
                f"feature_maps.layers: {unknown} are not layers of {type(network).__name__}; "
                f"known layers: {list(known)}"
            )
        return {name: layer for name, layer in known.items() if name in self.layers}

    def check_model(self, pl_module: pl.LightningModule) -> None:
        """Raise a ValueError when ``layers`` does not fit the module's network."""
        if not self.enabled or self.layers is None:
            return
        network = getattr(pl_module, "network", None)
        if not hasattr(network, "feature_layers"):
            raise ValueError(
                f"feature_maps.layers is set but {type(pl_module).__name__} has no "
                "network.feature_layers()"
            )
        self.selected_layers(network)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._input, self._last_epoch, self._last_snapshot = None, None, None
        self.seconds.clear()
        if not self.enabled or not trainer.is_global_zero or mlflow_logger(trainer) is None:
            return
        network = getattr(pl_module, "network", None)
        if not hasattr(network, "feature_layers"):
            rank_zero_warn(
                f"{type(pl_module).__name__} has no network.feature_layers(): "
                "no feature-map snapshots"
            )
            return
        self.check_model(pl_module)
        if trainer.datamodule is None:
            rank_zero_warn("no data module to take a validation input from: no feature maps")
            return
        # TorchIO draws from torch's generator for every transform it applies (its
        # `p`), even deterministic ones: reading the input must not shift the draws
        # of training, or switching snapshots on or off would change the results.
        data: SegmentationData = trainer.datamodule
        with torch.random.fork_rng(devices=[]):
            image = first_validation_image(data)
        # A module whose network reads some of the data's channels says which.
        select = getattr(pl_module, "network_input", None)
        image = image if select is None else select(image[None])[0]
        self._input = snapshot_input(image, network.spatial_dims, data.patch_size)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._input is None:
            return
        self._last_epoch = trainer.current_epoch
        if trainer.current_epoch % self.every_n_epochs == 0:
            self.snapshot(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The last finished epoch, however training ended (max_epochs, early stopping).
        if self._input is not None and self._last_epoch not in (None, self._last_snapshot):
            self.snapshot(trainer, pl_module, self._last_epoch)

    @torch.no_grad()
    def snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        """Forward the fixed input, then log every selected layer's files and metrics."""
        start = time.perf_counter()
        logger = mlflow_logger(trainer)
        network = pl_module.network
        layers = self.selected_layers(network)
        was_training = network.training
        network.eval()  # batch statistics of a single input would distort the maps
        try:
            with capture_features(layers) as maps:
                network(self._input.to(device=pl_module.device, dtype=pl_module.dtype))
        finally:
            network.train(was_training)
        metrics: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as folder:
            for name in layers:
                summary = summarise(maps[name][0], self.channels)
                write_layer(Path(folder), name, summary)
                metrics[f"{ARTIFACT_ROOT}/{name}/mean_abs"] = summary.mean_abs
                metrics[f"{ARTIFACT_ROOT}/{name}/dead_share"] = summary.dead_share
            # One upload for the whole epoch: a call per file would dominate the cost.
            logger.experiment.log_artifacts(logger.run_id, folder, epoch_folder(epoch))
        self.seconds.append(time.perf_counter() - start)
        metrics[f"{ARTIFACT_ROOT}/snapshot_seconds"] = self.seconds[-1]
        logger.log_metrics(metrics, step=epoch)
        self._last_snapshot = epoch
