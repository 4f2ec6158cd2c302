"""Time to a Dice: the project's default method against MONAI's tutorial-style pipeline.

Both train on the phantom's training subjects (the project's split) in this process,
one after the other, each with all torch threads and the config's seed:

- MONAI: ``benchmarks/monai_pipeline.py`` (BasicUNet 2D, DiceCELoss, Adam 1e-3,
  ``RandCropByPosNegLabeld`` slices, ``CacheDataset``; patch size, patches per step and
  workers from the profile);
- the project: the baseline config at quick sizes, built as ``versaseg fit`` builds
  it, trained by a Lightning ``Trainer`` with the config's settings (its validation,
  checkpoints and logging off: the probes below replace them).

The test Dice (mean over foreground classes and over the test split's whole volumes,
each pipeline with its own preprocessing and inference) is read at fixed points of
training time (``--every`` seconds, up to ``--budget``), with the clock stopped while
it is read (``benchmarks/training_clock.py``). The figure: the project's training time
to first reach MONAI's best Dice, over MONAI's time to reach it. Goal: at most 0.7.

Run: .venv/bin/python benchmarks/time_to_dice.py [--budget 100] [--every 12.5] [--tiny]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from benchmarks.bench_common import (
    Row,
    as_fit_runs,
    isolate_tracking,
    parse_options,
    print_rows,
    project_cli,
    quiet,
    trainer_options,
)
from benchmarks.monai_pipeline import MonaiPipeline
from benchmarks.training_clock import Curve, TrainingClock, test_dice
from datamodules.brain import BrainDataModule
from experiments.fit import VersasegCLI

GOAL = 0.7


class ClockCallback(pl.Callback):
    """Ticks the training clock after every step and stops the fit once its budget is spent."""

    def __init__(self, clock: TrainingClock) -> None:
        self.clock = clock

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.clock.tick():
            trainer.should_stop = True


def project_cases(data: BrainDataModule) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(image, label) of every test subject, preprocessed as the project's test does."""
    dataset = data.subjects_dataset("test")
    batches = [data.collate.volume([dataset[index]]) for index in range(len(dataset))]
    return [(batch["image"][0], batch["label"][0]) for batch in batches]


def project_curve(cli: VersasegCLI, options: argparse.Namespace, scratch: Path) -> Curve:
    """The project's test Dice over its training time."""
    module, data = as_fit_runs(cli, cli.model), cli.datamodule
    cases = project_cases(data)

    def evaluate() -> float:
        module.eval()
        dice = test_dice(module.segment, cases, len(module.class_names))
        module.train()
        return dice

    pl.seed_everything(cli.config["seed_everything"], verbose=False)
    trainer_settings = trainer_options(
        cli, scratch, max_epochs=-1, max_steps=-1, limit_train_batches=None, limit_val_batches=0
    )
    clock = TrainingClock(options.every, options.budget, evaluate, "project")
    trainer = pl.Trainer(**trainer_settings, callbacks=[ClockCallback(clock)])
    trainer.fit(module, datamodule=data)
    return clock.curve


def monai_curve(cli: VersasegCLI, options: argparse.Namespace) -> Curve:
    """MONAI's tutorial pipeline's test Dice over its training time, on the project's split."""
    data = cli.datamodule
    seed, batch = cli.config["seed_everything"], cli.model.inference_batch_size
    pipeline = MonaiPipeline(data, seed=seed, inference_batch_size=batch)
    labels = [label for _, label in project_cases(data)]  # the same truth for both
    images = pipeline.test_images()
    for image, label in zip(images, labels, strict=True):
        if tuple(image.shape[1:]) != tuple(label.shape):
            raise ValueError(f"MONAI read a {tuple(image.shape)} image for a {label.shape} label")
    clock = TrainingClock(
        options.every,
        options.budget,
        lambda: pipeline.evaluate(list(zip(images, labels, strict=True))),
        "monai",
    )
    pipeline.train(clock)
    return clock.curve


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """The ratio of times to MONAI's best Dice, project over MONAI."""
    scratch = scratch or isolate_tracking()
    cli = project_cli(options.profile)
    cli.datamodule.load("fit")
    cli.model.prepare(cli.datamodule)
    monai = monai_curve(cli, options)  # first: its best Dice is the target
    project = project_curve(cli, options, scratch)
    best = max(monai.dice)
    monai_seconds = monai.first_reaching(best)
    project_seconds = project.first_reaching(best)
    ratio = float("nan") if project_seconds is None else project_seconds / monai_seconds
    reached = "not reached" if project_seconds is None else f"at {project_seconds:.0f} s"
    return [
        Row(
            "time to MONAI's best test Dice, project / MONAI tutorial",
            f"<= {GOAL:.1f}x",
            "not reached" if project_seconds is None else f"{ratio:.2f}x",
            project_seconds is not None and ratio <= GOAL,
            f"MONAI best {best:.3f} at {monai_seconds:.0f} s ({len(monai.dice)} "
            f"probes); project {reached}, its best {max(project.dice):.3f}; training time only, "
            f"probes every {options.every:g} s up to {options.budget:g} s, "
            f"{options.profile} profile",
            ratio,
        )
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="project sizes (default quick; smoke with --tiny)")
    parser.add_argument("--budget", type=float, help="training seconds per pipeline (100)")
    parser.add_argument("--every", type=float, help="training seconds between probes (12.5)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "budget": 100.0, "every": 12.5},
        tiny={"profile": "smoke", "budget": 6.0, "every": 3.0},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
