"""What the ``make bench`` benchmarks share: the project built as a user runs it, and the table.

``project_cli`` builds the data module, the model and the trainer settings through the
same path as ``versaseg fit --config experiments/configs/baseline.yaml --profile quick``
(``experiments.fit.parse_cli``), so a benchmark measures what users run; ``Row`` is one
line of the table that ``benchmarks/run_all.py`` prints and writes.

Not a benchmark itself: the scripts next to it import it.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import logging
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import SaveConfigCallback
from torch.utils.data import DataLoader

from experiments.fit import VersasegCLI, apply_profile, parse_cli
from lightning_modules.memory_format import to_channels_last

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "experiments" / "configs" / "baseline.yaml"
PHANTOM = ROOT / "data" / "phantom" / "manifest.csv"
# 3D rows: a small training patch (the U-Net's depth 4 needs multiples of 8) and, for
# inference with overlap, the README's 3D patch; the project's defaults are 2D.
PATCH_3D = (32, 32, 32)
INFERENCE_PATCH_3D = (64, 64, 32)
INFERENCE_OVERLAP_3D = 16
# Trainer settings a benchmark replaces: no tracking, checkpoints, bars or summaries.
NOT_MEASURED = (
    "logger",
    "callbacks",
    "plugins",
    "profiler",
    "default_root_dir",
    "enable_checkpointing",
    "enable_progress_bar",
    "enable_model_summary",
)
# Callbacks that write files or draw on the terminal: left out of every benchmark.
WRITERS = (ModelCheckpoint, SaveConfigCallback, ProgressBar, ModelSummary)


@dataclass(frozen=True)
class Row:
    """One line of the bench table.

    Args:
        benchmark: what is measured.
        goal: the issue's goal, in words.
        measured: the figure as printed (a ratio, share or size).
        met: whether the goal is met; ``None`` for a line that only informs.
        detail: the peer's and the project's own figures behind it.
        value: the figure as a number, for the CSV.
    """

    benchmark: str
    goal: str
    measured: str
    met: bool | None
    detail: str = ""
    value: float = float("nan")


def machine() -> str:
    """The machine a table was measured on: platform, cores, torch threads."""
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    )


def quiet() -> None:
    """Silence Lightning's per-trainer banners and the warnings a tiny run provokes."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*deterministic.*")
    warnings.filterwarnings("ignore", ".*val_dataloader.*")


def isolate_tracking() -> Path:
    """Point MLflow at a scratch store, so that nothing a benchmark builds touches ``mlruns/``.

    Returns the scratch folder (removed when the process exits), for trainer roots too.
    """
    folder = Path(tempfile.mkdtemp(prefix="versaseg-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    return folder


def project_cli(
    profile: str, *flags: str, spatial_dims: int = 2, manifest: Path = PHANTOM
) -> VersasegCLI:
    """The baseline config at ``profile`` sizes, parsed and built as ``versaseg fit`` does.

    Nothing runs: the caller takes ``cli.model``, ``cli.datamodule`` and the trainer
    settings (``trainer_options``). 3D uses ``PATCH_3D`` for training patches.
    """
    args = ["fit", "--config", str(BASELINE), "--profile", profile]
    args += ["--data.manifest", str(manifest), "--trainer.logger", "false"]
    if spatial_dims == 3:
        args += ["--data.spatial_dims", "3", "--data.patch_size", str(list(PATCH_3D))]
    # parse_cli builds without running when given no subcommand.
    return parse_cli(apply_profile([*args, *flags])[1:], run=False)


def as_fit_runs(cli: VersasegCLI, module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in the memory layout ``versaseg fit`` gives it (``channels_last.enabled``).

    A benchmark that trains or infers outside the user's callbacks calls it, so that
    the project and its peer run the same network in the same layout.
    """
    return in_layout(module, channels_last=cli.config["channels_last"]["enabled"])


def in_layout(module: torch.nn.Module, *, channels_last: bool) -> torch.nn.Module:
    """``module`` channels-last when asked (``to_channels_last``), else as it is."""
    if channels_last:
        to_channels_last(module)
    return module


def trainer_options(cli: VersasegCLI, scratch: Path, **overrides: Any) -> dict[str, Any]:
    """The resolved config's ``Trainer`` arguments without tracking, checkpoints or bars."""
    options = {k: v for k, v in dict(cli.config["trainer"]).items() if k not in NOT_MEASURED}
    options |= {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(scratch),
    }
    return options | overrides


def user_callbacks(cli: VersasegCLI) -> list[Callback]:
    """The callbacks of the user's trainer but those that write files (``WRITERS``)."""
    return [c for c in cli.trainer.callbacks if not isinstance(c, WRITERS)]


def drain(loader: DataLoader | None) -> None:
    """Let the subject workers of a training loader's TorchIO queue finish their pass.

    A pass cut short leaves its worker processes blocked on subjects nobody reads; when
    the loader is garbage-collected, later, torch waits seconds for each before killing
    it, inside whatever is being timed then. Read to the end, they exit at once.
    """
    queue = getattr(loader, "dataset", None)
    if isinstance(queue, tio.Queue) and queue.num_workers > 0:
        for _ in queue.subjects_iterable:
            pass


def interleaved(
    runs: dict[str, Callable[[], Sequence[float]]], rounds: int
) -> dict[str, list[float]]:
    """Samples of each run, the runs taking turns for ``rounds`` rounds.

    Turns spread a slow spell of the machine over every run alike, so their ratio
    stays fair; the order is reversed every other round so that none always goes first.
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            samples[name].extend(runs[name]())
    return samples


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table: benchmark, goal, measured, met, detail."""
    lines = ["| benchmark | goal | measured | met | detail |", "| --- | --- | ---: | :---: | --- |"]
    for row in rows:
        met = "n/a" if row.met is None else ("yes" if row.met else "no")
        lines.append(f"| {row.benchmark} | {row.goal} | {row.measured} | {met} | {row.detail} |")
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """The rows as CSV, with the figure as a number in ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])) if rows else ["benchmark"])
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def parse_options(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    full: dict[str, Any],
    tiny: dict[str, Any],
) -> argparse.Namespace:
    """Parse ``argv``; options left unset take the ``full`` sizes, or ``tiny`` ones with --tiny.

    The parser's options default to None; ``--tiny`` is added here, for a check that a
    script runs end to end in seconds rather than a measurement.
    """
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a check, not a figure")
    parsed = parser.parse_args(argv)
    for name, value in (full | (tiny if parsed.tiny else {})).items():
        if getattr(parsed, name) is None:
            setattr(parsed, name, value)
    return parsed


def print_rows(rows: Sequence[Row]) -> None:
    """A benchmark's own rows, when it runs alone."""
    print(f"\nmachine: {machine()}\n")
    print(markdown_table(rows))
