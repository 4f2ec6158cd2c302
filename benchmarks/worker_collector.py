"""Garbage collection in an ablation worker: its libraries frozen against left in the heap.

An ablation's pool workers (``experiments.ablation_launchers.run_in_processes``) start
with ``experiments.ablation_jobs.start_worker``, which freezes the objects alive after
the imports (``spare_the_collector``), so that Python's full collections during a
variant no longer walk torch's, Lightning's and MLflow's objects. The peer is the same
spawned worker without the freeze (threads set and ``experiments.fit`` imported, as
before). Each worker trains one loss-study variant twice, as a worker trains one
variant after another, and the script reads the second: its seconds in full
(generation 2) collections, counted by ``gc.callbacks``, and its wall time. The two
workers take turns; the figure is the ratio of the medians.

Run: .venv/bin/python -m benchmarks.worker_collector [--variant multiclass-ce-none]
     [--rounds 1] [--profile quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.bench_common import (
    PHANTOM,
    Row,
    interleaved,
    isolate_tracking,
    parse_options,
    print_rows,
)
from experiments.ablate import AblationRunner
from experiments.ablation_file import load_ablation
from experiments.ablation_jobs import share_cores, start_worker

LOSS_STUDY = Path("experiments/ablations/losses.yaml")


def plain_worker(threads: int) -> None:
    """The pool worker before ``start_worker``: threads limited, libraries imported."""
    share_cores(threads)
    import experiments.fit  # noqa: F401


def second_fit(arguments: list[str]) -> tuple[float, float]:
    """In the worker: fit twice; the second fit's (seconds in full collections, wall seconds)."""
    from experiments.fit import run_lightning

    run_lightning(arguments)
    spent = [0.0]
    started = [0.0]

    def clock(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(clock)
    begin = time.perf_counter()
    run_lightning(arguments)
    wall = time.perf_counter() - begin
    gc.callbacks.remove(clock)
    return spent[0], wall


def in_worker(initializer: Callable[[int], None], arguments: list[str]) -> Callable[[], Any]:
    """A fresh spawned worker started by ``initializer``, measuring ``second_fit``."""

    def run() -> list[tuple[float, float]]:
        context = get_context("spawn")
        with ProcessPoolExecutor(
            1, mp_context=context, initializer=initializer, initargs=(1,)
        ) as pool:
            return [pool.submit(second_fit, arguments).result()]

    return run


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """One row: full-collection seconds of a worker's variant, frozen against not."""
    scratch = scratch or isolate_tracking()
    runner = AblationRunner(
        load_ablation(LOSS_STUDY),
        profile=options.profile,
        manifest=str(PHANTOM),
        reports=scratch / "reports",
    )
    arguments = runner.fit_arguments(runner.variant(options.variant), tags={})
    arguments += ["--trainer.default_root_dir", str(scratch / "checkpoints")]
    measured = interleaved(
        {"frozen": in_worker(start_worker, arguments), "plain": in_worker(plain_worker, arguments)},
        rounds=options.rounds,
    )
    collect = {k: statistics.median(c for c, _ in v) for k, v in measured.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in measured.items()}
    return [
        Row(
            "full collections in a worker's variant, frozen / plain",
            "(informs)",
            f"{collect['frozen']:.2f} / {collect['plain']:.2f} s",
            None,
            f"{options.variant}, {options.profile} profile, second fit in the worker: wall "
            f"{wall['frozen']:.1f} against {wall['plain']:.1f} s "
            f"({wall['frozen'] / wall['plain']:.3f}x), median of {options.rounds} round(s)",
            collect["frozen"] - collect["plain"],
        )
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` runs the smoke profile, a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help="loss-study variant (default multiclass-ce-none)")
    parser.add_argument("--rounds", type=int, help="turns of the two workers (default 1)")
    parser.add_argument("--profile", help="sizes (default quick; smoke with --tiny)")
    return parse_options(
        parser,
        argv,
        full={"variant": "multiclass-ce-none", "rounds": 1, "profile": "quick"},
        tiny={"profile": "smoke"},
    )


def main() -> None:
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
