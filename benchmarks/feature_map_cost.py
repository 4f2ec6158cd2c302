"""Cost of the feature-map snapshots as a share of training time, with a real ``versaseg fit``.

Trains the baseline config with a profile (default quick) in a scratch folder,
with its own phantom and MLflow store, snapshotting every epoch. Epoch time is
the fit's training time (training and validation, Lightning's ``Timer``) less
the snapshots, per epoch. The script prints the snapshot time against the epoch
time, then the share of training time the snapshots take, for a run of the
profile's length, at each frequency; the issue's budget is 5 % at the default.

Run: .venv/bin/python benchmarks/feature_map_cost.py [--profile quick] [--epochs 12]
Record the numbers in docs/performance.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks import Timer

from datamodules.phantom import write_phantom
from experiments.fit import VersasegCLI, apply_profile
from experiments.profiles import profile_path
from lightning_modules.feature_maps import FeatureMapSnapshots

BASELINE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "baseline.yaml"


class TimedCLI(VersasegCLI):
    """``versaseg fit`` with Lightning's Timer added (its enum option defeats the CLI's parser)."""

    def before_fit(self) -> None:
        super().before_fit()
        self.trainer.callbacks.append(Timer())


def snapshot_count(epochs: int, every_n_epochs: int) -> int:
    """Snapshots in a run of ``epochs``: epochs 0, n, 2n, ... and the last one."""
    return len({*range(0, epochs, every_n_epochs), epochs - 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--epochs", type=int, help="epochs to time (default: the profile's)")
    parser.add_argument("--subjects", type=int, default=12, help="phantom subjects")
    options = parser.parse_args()
    profile = yaml.safe_load(profile_path(options.profile).read_text())
    run_epochs = int(profile["trainer"]["max_epochs"])
    epochs = options.epochs or run_epochs

    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # the scratch folder's own store
        manifest = write_phantom(Path("phantom"), options.subjects, seed=0)
        args = ["fit", "--config", str(BASELINE), "--profile", options.profile]
        args += ["--data.manifest", str(manifest), "--trainer.max_epochs", str(epochs)]
        args += ["--trainer.enable_progress_bar", "false", "--feature_maps.every_n_epochs", "1"]
        cli = TimedCLI(apply_profile(args))
        snapshots = next(c for c in cli.trainer.callbacks if isinstance(c, FeatureMapSnapshots))
        timer = next(c for c in cli.trainer.callbacks if isinstance(c, Timer))
        seconds = snapshots.seconds
        epoch = (timer.time_elapsed("train") - sum(seconds)) / epochs

    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"profile {options.profile}, {epochs} epochs timed, {options.subjects} phantom subjects")
    snapshot = statistics.median(seconds)
    print(f"epoch (train + validation, no snapshot): {epoch:.2f} s")
    print(
        f"snapshot: median {snapshot * 1000:.0f} ms, first {seconds[0] * 1000:.0f} ms, "
        f"max {max(seconds) * 1000:.0f} ms ({snapshot / epoch:.1%} of an epoch)"
    )
    default = FeatureMapSnapshots().every_n_epochs
    print(f"share of a {run_epochs}-epoch run's training time, by every_n_epochs:")
    for every in range(1, 7):
        share = snapshot_count(run_epochs, every) * snapshot / (run_epochs * epoch)
        print(f"  {every}: {share:.2%}{'  (default)' if every == default else ''}")


if __name__ == "__main__":
    main()
