"""Data wait: the share of training wall time spent waiting for the next batch.

The baseline config at quick sizes (the profile's ``samples_per_volume``,
``queue_length`` and ``batch_size``), built as ``versaseg fit`` builds it, trains with
the project's TorchIO queue at ``data.num_workers`` 0 (the shipped setting) and 2
(``--workers 0 1 2`` adds 1), in 2D and in 3D (training patch ``bench_common.PATCH_3D``).
The share is ``PerformanceRecorder``'s own
``perf/data_wait_share``: the gaps between the end of one step and the start of the
next, over the epoch's wall time. Each fit is one epoch without validation; the four
settings take turns, and the figure is the median over rounds. A 3D epoch is cut to one
queue's worth of batches (``queue_length / batch_size``: the queue refills at that
interval, so the share of a whole epoch is the same, but for the workers' start, which
then weighs twice) to fit the budget. Peer: the same run's compute time. Goal: under 5 %
at the shipped setting; the table also says which ``num_workers`` gives the shorter
step (waiting included), for whoever decides what ships.

Run: .venv/bin/python benchmarks/data_wait.py [--rounds 3] [--workers 0 2] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl

from benchmarks.bench_common import (
    Row,
    as_fit_runs,
    drain,
    interleaved,
    isolate_tracking,
    parse_options,
    print_rows,
    project_cli,
    quiet,
    trainer_options,
)
from lightning_modules.performance import PerformanceRecorder

GOAL = 0.05


class EpochRecorder(PerformanceRecorder):
    """``PerformanceRecorder`` that also keeps each epoch's waiting and computing seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[tuple[float, float, int]] = []  # (waiting, computing, steps)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.steps:
            self.epochs.append((self.waiting, self.computing, self.steps))
        super().on_train_epoch_end(trainer, pl_module)


def one_epoch(
    profile: str, spatial_dims: int, workers: int, scratch: Path
) -> Callable[[], list[tuple[float, float, int]]]:
    """A fit of one epoch at these settings, measured by ``EpochRecorder``."""
    cli = project_cli(profile, "--data.num_workers", str(workers), spatial_dims=spatial_dims)
    data = cli.datamodule
    # 3D: one queue's worth of batches (see the module docstring); 2D: the whole epoch.
    limit = data.queue_length // data.batch_size if spatial_dims == 3 else None
    options = trainer_options(
        cli, scratch, max_epochs=1, max_steps=-1, limit_train_batches=limit, limit_val_batches=0
    )

    def run() -> list[tuple[float, float, int]]:
        recorder = EpochRecorder()
        trainer = pl.Trainer(**options, callbacks=[recorder])
        trainer.fit(as_fit_runs(cli, cli.model), datamodule=data)
        drain(trainer.train_dataloader)  # a cut epoch's workers, before the next setting
        return recorder.epochs

    return run


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """One row per setting, and one saying which ``num_workers`` is better in 2D and 3D."""
    scratch = scratch or isolate_tracking()
    shipped = project_cli(options.profile).datamodule
    shipped_key = (shipped.spatial_dims, shipped.num_workers)
    workers = sorted({*options.workers, shipped.num_workers})
    runs = {
        (dims, count): one_epoch(options.profile, dims, count, scratch)
        for dims in (2, 3)
        for count in workers
    }
    epochs = interleaved(runs, rounds=options.rounds)
    table = []
    step_seconds: dict[tuple[int, int], float] = {}
    for (dims, count), measured in epochs.items():
        share = statistics.median(wait / (wait + compute) for wait, compute, _ in measured)
        step_seconds[(dims, count)] = statistics.median(
            (wait + compute) / steps for wait, compute, steps in measured
        )
        is_shipped = (dims, count) == shipped_key
        table.append(
            Row(
                f"data wait {dims}D, num_workers {count}" + (" (shipped)" if is_shipped else ""),
                f"< {GOAL:.0%}" if is_shipped else "(informs)",
                f"{share:.1%}",
                share < GOAL if is_shipped else None,
                f"step {step_seconds[(dims, count)] * 1e3:.0f} ms incl. waiting, median of "
                f"{len(measured)} epochs, {options.profile} profile",
                share,
            )
        )
    best = []
    for dims in (2, 3):
        fastest = min(workers, key=lambda count: step_seconds[(dims, count)])
        times = ", ".join(f"{c}: {step_seconds[(dims, c)] * 1e3:.0f} ms" for c in workers)
        best.append(f"{dims}D: {fastest} ({times})")
    table.append(
        Row(
            "data wait: num_workers with the shorter step",
            "(informs what ships)",
            "; ".join(b.split(" (")[0] for b in best),
            None,
            "; ".join(best),
        )
    )
    return table


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="sizes (default quick; smoke with --tiny)")
    parser.add_argument("--rounds", type=int, help="epochs per setting, in turns (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", help="num_workers to compare (0 2)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "rounds": 3, "workers": [0, 2]},
        tiny={"profile": "smoke", "rounds": 1},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
