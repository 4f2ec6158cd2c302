"""Training-step time of the distance-weighted losses against the unweighted ones.

One step = forward, loss, backward and optimiser step of the baseline U-Net on a
quick-profile batch (16 patches of 64x64, 2 channels, 5 classes). Distance maps
are precomputed, as the data pipeline does, so the timing covers only what a
training step pays. The network is channels-last, as ``versaseg fit`` stores it
(``channels_last.enabled`` in baseline.yaml); ``--default-layout`` times PyTorch's.

Run: .venv/bin/python benchmarks/loss_step_time.py [--steps 20] [--spatial-dims 2]
    [--default-layout]
Record the numbers in docs/performance.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from benchmarks.bench_common import in_layout
from datamodules.distance import signed_distance_maps
from lightning_modules.losses import build_loss
from lightning_modules.networks import build_network

CLASSES = 5


def blob_labels(shape: tuple[int, ...], batch: int, seed: int) -> np.ndarray:
    """Smooth random label maps: thresholded blurred noise, one class per band."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(
        rng.standard_normal((batch, *shape)), sigma=(0, *[4] * len(shape))
    )
    edges = np.quantile(noise, [0.4, 0.7, 0.85, 0.95])
    return np.digitize(noise, edges)


def make_step(
    base: str, weighting: str, spatial_dims: int, channels_last: bool
) -> Callable[[dict], None]:
    """A closure running one training step of a fresh U-Net with this loss."""
    torch.manual_seed(0)
    network = build_network(
        "unet",
        spatial_dims=spatial_dims,
        in_channels=2,
        out_channels=CLASSES,
        depth=4,
        base_channels=16,
    )
    in_layout(network, channels_last=channels_last)
    loss = build_loss(base, weighting)
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3)

    def step(batch: dict[str, torch.Tensor]) -> None:
        optimiser.zero_grad()
        value = loss(network(batch["image"]), batch["label"], distance=batch["distance"])
        value.backward()
        optimiser.step()

    return step


def time_interleaved(
    configs: list[tuple[str, str]],
    batch: dict[str, torch.Tensor],
    steps: int,
    channels_last: bool = True,
) -> dict[tuple[str, str], float]:
    """Median seconds per step of each config, measured in turns.

    Taking turns step by step spreads any slowdown of the machine over all
    configs alike, so their ratios stay fair.
    """
    spatial_dims = batch["image"].ndim - 2
    runners = {config: make_step(*config, spatial_dims, channels_last) for config in configs}
    times: dict[tuple[str, str], list[float]] = {config: [] for config in configs}
    for round_index in range(steps + 3):
        for config, step in runners.items():
            start = time.perf_counter()
            step(batch)
            if round_index >= 3:  # the first rounds warm up allocators and caches
                times[config].append(time.perf_counter() - start)
    return {config: statistics.median(values) for config, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2)
    parser.add_argument(
        "--default-layout", action="store_true", help="PyTorch's layout, not channels-last"
    )
    options = parser.parse_args()
    shape = (64, 64) if options.spatial_dims == 2 else (32, 32, 32)
    batch_size = 16 if options.spatial_dims == 2 else 2
    labels = blob_labels(shape, batch_size, seed=0)
    batch = {
        "image": torch.randn(batch_size, 2, *shape),
        "label": torch.from_numpy(labels).long(),
        "distance": torch.from_numpy(np.stack([signed_distance_maps(x, CLASSES) for x in labels])),
    }
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    layout = "default" if options.default_layout else "channels-last"
    print(f"batch: {batch_size} x 2 x {shape}, {CLASSES} classes, U-Net depth 4 width 16, {layout}")
    configs = [(base, weighting) for base in ("ce", "dice") for weighting in ("none", "dtm", "dpt")]
    medians = time_interleaved(configs, batch, options.steps, not options.default_layout)
    for base, weighting in configs:
        seconds = medians[(base, weighting)]
        ratio = seconds / medians[(base, "none")]
        print(f"{base}+{weighting}: {seconds * 1000:7.1f} ms/step  ({ratio:.2f}x {base}+none)")


if __name__ == "__main__":
    main()
