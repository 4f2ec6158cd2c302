"""Memory layout: the project's channels-last convolutions against PyTorch's default layout.

The baseline network at quick sizes (built as ``versaseg fit`` builds it) in two copies,
one in PyTorch's default (``NCHW``) layout, the peer a hand-written loop gets, and one
converted by ``lightning_modules.memory_format.to_channels_last`` as every project run
is. Each does hand-written training steps (forward, loss, backward, optimiser step) on
the same in-memory batches of the project's queue, 2D and 3D (training patch
``bench_common.PATCH_3D``), and whole-volume inference (``SegmentationModule.segment``)
of one 2D test volume. Calls take turns; figures are medians. The table gives the
channels-last time over the default layout's, and the largest logit difference of the
inference (float rounding only).

Run: .venv/bin/python benchmarks/memory_format.py [--rounds 5] [--steps 4] [--tiny]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_common import (
    Row,
    interleaved,
    isolate_tracking,
    parse_options,
    print_rows,
    project_cli,
    quiet,
)
from benchmarks.framework_overhead import draw_batches, hand_step
from benchmarks.inference_vs_monai import test_volume
from experiments.fit import VersasegCLI
from lightning_modules.memory_format import to_channels_last


def training_steps(
    cli: VersasegCLI, network: torch.nn.Module, batches: Sequence[dict[str, Any]]
) -> Callable[[], list[float]]:
    """Hand-written steps of ``network`` over ``batches``; returns each step's seconds."""
    loss = cli.model.loss
    optimiser = cli.model.optimizer(network.parameters())

    def run() -> list[float]:
        seconds = []
        for batch in batches:
            started = time.perf_counter()
            hand_step(network, loss, optimiser, batch)
            seconds.append(time.perf_counter() - started)
        return seconds

    return run


def both_layouts(cli: VersasegCLI) -> dict[str, torch.nn.Module]:
    """Two copies of the module's network: PyTorch's default layout and channels-last."""
    default = copy.deepcopy(cli.model.network)
    converted = copy.deepcopy(default)
    to_channels_last(converted)
    return {"default": default, "channels-last": converted}


def ratio_row(name: str, seconds: dict[str, list[float]], detail: str) -> Row:
    """One row: the channels-last median over the default layout's."""
    default, converted = (statistics.median(seconds[k]) for k in ("default", "channels-last"))
    ratio = converted / default
    return Row(
        f"memory layout: {name}, channels-last / default",
        "(informs)",
        f"{ratio:.2f}x",
        None,
        f"{converted * 1e3:.0f} against {default * 1e3:.0f} ms, {detail}",
        ratio,
    )


def training_row(cli: VersasegCLI, options: argparse.Namespace, dims: int) -> Row:
    cli.datamodule.load("fit")
    cli.model.prepare(cli.datamodule)
    batches = draw_batches(cli, options.steps)
    runs = {
        name: training_steps(cli, network.train(), batches)
        for name, network in both_layouts(cli).items()
    }
    seconds = interleaved(runs, rounds=options.rounds)
    shape = "x".join(str(s) for s in batches[0]["image"].shape)
    return ratio_row(f"{dims}D training step", seconds, f"batch {shape}, median step")


def inference_rows(cli: VersasegCLI, options: argparse.Namespace) -> list[Row]:
    module = cli.model.eval()
    image = test_volume(cli)

    def segment_with(network: torch.nn.Module) -> Callable[[], list[float]]:
        def run() -> list[float]:
            started = time.perf_counter()
            with torch.no_grad():
                module.segment_with(network, image)
            return [time.perf_counter() - started]

        return run

    networks = {name: network.eval() for name, network in both_layouts(cli).items()}
    with torch.no_grad():  # also the warm-up of both
        logits = {name: module.segment_with(n, image) for name, n in networks.items()}
    difference = float((logits["default"] - logits["channels-last"]).abs().max())
    seconds = interleaved({n: segment_with(net) for n, net in networks.items()}, options.rounds)
    shape = "x".join(str(s) for s in image.shape[1:])
    detail = f"{shape} test volume, max abs logit difference {difference:.1e}"
    return [ratio_row("2D whole-volume inference", seconds, detail)]


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """Training steps in 2D and 3D, and 2D inference, in both layouts."""
    if scratch is None:
        isolate_tracking()
    two = project_cli(options.profile)
    three = project_cli(options.profile, spatial_dims=3)
    return [
        training_row(two, options, 2),
        training_row(three, options, 3),
        *inference_rows(two, options),
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="config sizes (default quick; smoke with --tiny)")
    parser.add_argument("--rounds", type=int, help="turns of each layout (default 5)")
    parser.add_argument("--steps", type=int, help="training steps per turn (default 4)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "rounds": 5, "steps": 4},
        tiny={"profile": "smoke", "rounds": 2, "steps": 2},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
