"""Framework overhead: the project's training step under Lightning against a hand-written loop.

The baseline config at quick sizes is built as ``versaseg fit`` builds it; its
``SegmentationModule`` trains under a Lightning ``Trainer`` with the config's trainer
settings and the user's callbacks (logger, checkpoints, progress bar and summary off).
The peer is a plain PyTorch loop (zero_grad, forward, loss, backward, optimiser step)
with a copy of the same network, the same loss and the same optimiser settings. Both
run over the same in-memory batches, drawn once from the project's TorchIO queue, so
neither loads data. Blocks of steps take turns; a step's time is the interval between
the starts of consecutive steps, so that Lightning's work between steps (hooks, logging,
its loops) counts. Each round's ratio is Lightning's median step over the hand-written
loop's in the block next to it, so that both see the machine at the same speed; the
figure is the median over rounds (pooling all steps of each side read anywhere from
0.93x to 1.09x over runs of the same code). Goal: at most 1.05x.

Run: .venv/bin/python benchmarks/framework_overhead.py [--blocks 16] [--steps 10] [--tiny]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from benchmarks.bench_common import (
    Row,
    as_fit_runs,
    drain,
    isolate_tracking,
    parse_options,
    print_rows,
    project_cli,
    quiet,
    trainer_options,
    user_callbacks,
)
from experiments.fit import VersasegCLI

GOAL = 1.05
WARMUP = 1  # a block's first step pays for the loop's start: not a steady step


class Batches:
    """Pre-built batches as one iterable (a plain list reads as several loaders to Lightning)."""

    def __init__(self, batches: Sequence[dict[str, Any]]) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StepStarts(pl.Callback):
    """The time each training step starts."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.starts.append(time.perf_counter())


def intervals(starts: Sequence[float]) -> list[float]:
    """Seconds between consecutive step starts, past the warm-up."""
    return [later - earlier for earlier, later in itertools.pairwise(starts[WARMUP:])]


def draw_batches(cli: VersasegCLI, count: int) -> list[dict[str, Any]]:
    """``count`` training batches from the project's queue, drawn once."""
    batches: list[dict[str, Any]] = []
    while len(batches) < count:
        loader = cli.datamodule.train_dataloader()
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
        drain(loader)
    return batches


def lightning_block(
    cli: VersasegCLI, batches: Sequence[dict[str, Any]], scratch: Path
) -> Callable[[], list[float]]:
    """One fit over ``batches`` with a new Trainer; returns its step intervals."""
    callbacks = user_callbacks(cli)
    options = trainer_options(
        cli, scratch, max_epochs=1, max_steps=-1, limit_train_batches=None, limit_val_batches=0
    )

    def run() -> list[float]:
        clock = StepStarts()
        trainer = pl.Trainer(**options, callbacks=[*callbacks, clock])
        trainer.fit(cli.model, train_dataloaders=Batches(batches))
        return intervals(clock.starts)

    return run


def hand_step(
    network: torch.nn.Module,
    loss: Callable[..., torch.Tensor],
    optimiser: torch.optim.Optimizer,
    batch: dict[str, Any],
) -> None:
    """One training step as a hand-written loop does it: zero_grad, loss, backward, step."""
    optimiser.zero_grad()
    loss(network(batch["image"]), batch["label"]).backward()
    optimiser.step()


def plain_block(cli: VersasegCLI, batches: Sequence[dict[str, Any]]) -> Callable[[], list[float]]:
    """The same steps by hand, on a copy of the module's network; returns the intervals."""
    module = cli.model
    network = as_fit_runs(cli, copy.deepcopy(module.network).train())
    loss = module.loss
    optimiser = module.optimizer(network.parameters())

    def run() -> list[float]:
        starts = []
        for batch in batches:
            starts.append(time.perf_counter())
            hand_step(network, loss, optimiser, batch)
        return intervals(starts)

    return run


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """The overhead row: Lightning's median step over the hand-written loop's."""
    scratch = scratch or isolate_tracking()
    cli = project_cli(options.profile)
    cli.datamodule.load("fit")
    cli.model.prepare(cli.datamodule)  # as the library does before a fit
    batches = draw_batches(cli, options.steps)
    runs = {"lightning": lightning_block(cli, batches, scratch), "plain": plain_block(cli, batches)}
    ratios, steps = [], {"lightning": [], "plain": []}
    for index in range(options.blocks):
        order = list(runs) if index % 2 == 0 else list(reversed(runs))  # neither always first
        medians = {name: statistics.median(runs[name]()) for name in order}
        ratios.append(medians["lightning"] / medians["plain"])
        for name, median in medians.items():
            steps[name].append(median)
    ratio = statistics.median(ratios)
    lightning, plain = (statistics.median(steps[name]) for name in ("lightning", "plain"))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio, ratio, ratio]
    shape = "x".join(str(s) for s in batches[0]["image"].shape)
    return [
        Row(
            "framework overhead: training step, Lightning / hand-written loop",
            f"<= {GOAL:.2f}x",
            f"{ratio:.3f}x",
            ratio <= GOAL,
            f"median of {len(ratios)} rounds' ratios (quartiles {quartiles[0]:.3f}-"
            f"{quartiles[2]:.3f}); median step {lightning * 1e3:.1f} ms against "
            f"{plain * 1e3:.1f} ms; {options.steps} steps a block, batch {shape}, "
            f"{options.profile} profile",
            ratio,
        )
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="sizes (default quick; smoke with --tiny)")
    parser.add_argument("--blocks", type=int, help="rounds of one block a side (default 16)")
    parser.add_argument("--steps", type=int, help="steps per block (default 10)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "blocks": 16, "steps": 10},
        tiny={"profile": "smoke", "blocks": 2, "steps": 4},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
