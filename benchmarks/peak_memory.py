"""Peak memory: the resident set of a quick 2D and a quick 3D ``versaseg fit``.

Each run is the user's command, ``versaseg fit --config experiments/configs/baseline.yaml
--profile quick`` (3D: ``--data.spatial_dims 3`` and the ``PATCH_3D`` training patch),
cut to one epoch of a few batches and one validation volume (the peak comes early:
the first steps and the first whole-volume inference), in a child process whose
working folder is a scratch folder, so that its MLflow store and checkpoints land
there (``experiments/tracking.py``: ``mlruns/`` of the working folder when
``MLFLOW_TRACKING_URI`` is unset). The figure is the child's ``ru_maxrss`` from
``os.wait4``, taken by a small launcher process (see ``LAUNCHER``). Goal: at most 4 GiB
each.

Run: .venv/bin/python benchmarks/peak_memory.py [--batches 4] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.bench_common import (
    BASELINE,
    PATCH_3D,
    PHANTOM,
    Row,
    parse_options,
    print_rows,
)

GIB = 2**30
GOAL_GIB = 4.0
# Linux keeps a process's peak RSS across exec, and a child forked from this process
# starts at this process's size: a small launcher forks the fit, so that the figure
# is the fit's own. It writes the fit's ru_maxrss to the file named first.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def fit_command(profile: str, spatial_dims: int, batches: int) -> list[str]:
    """The user's ``versaseg fit``, cut to one short epoch."""
    command = [str(Path(sys.executable).with_name("versaseg")), "fit", "--config", str(BASELINE)]
    command += ["--profile", profile, "--data.manifest", str(PHANTOM)]
    command += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(batches)]
    command += ["--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"]
    if spatial_dims == 3:
        command += ["--data.spatial_dims", "3", "--data.patch_size", str(list(PATCH_3D))]
    return command


def peak_bytes(command: Sequence[str]) -> int:
    """Run ``command`` in a scratch folder; its peak resident bytes.

    Raises:
        RuntimeError: the command failed; with the end of its output.
    """
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with tempfile.TemporaryDirectory(prefix="versaseg-memory-") as folder:
        log, peak = Path(folder) / "fit.log", Path(folder) / "maxrss"
        with log.open("w") as output:
            done = subprocess.run(
                [sys.executable, "-c", LAUNCHER, str(peak), *command],
                cwd=folder,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
        maxrss = int(peak.read_text())
    # wait4's ru_maxrss, of the fit alone: KiB on Linux, bytes on macOS.
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """One row per run: its peak resident memory against the goal."""
    table = []
    for dims in (2, 3):
        command = fit_command(options.profile, dims, options.batches)
        peaks = [peak_bytes(command) / GIB for _ in range(options.rounds)]
        peak = statistics.median(peaks)
        extra = f", patch {list(PATCH_3D)}" if dims == 3 else ""
        table.append(
            Row(
                f"peak memory: versaseg fit {dims}D",
                f"<= {GOAL_GIB:g} GiB",
                f"{peak:.2f} GiB",
                peak <= GOAL_GIB,
                f"ru_maxrss of the child; {options.profile} profile{extra}, "
                f"{options.batches} training batches and 1 validation volume, "
                f"median of {options.rounds}",
                peak,
            )
        )
    return table


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="sizes (default quick; smoke with --tiny)")
    parser.add_argument("--batches", type=int, help="training batches per run (default 4)")
    parser.add_argument("--rounds", type=int, help="runs of each (default 1)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "batches": 4, "rounds": 1},
        tiny={"profile": "smoke", "batches": 1},
    )


def main() -> None:
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
