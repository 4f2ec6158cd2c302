"""Running one ablation variant in a process: its stages, its output, its share of the cores.

``run_variant`` trains one variant (after its first stage, if it has one) with what it
prints sent to the variant's log; ``share_cores`` limits a worker process of ``--jobs N``
to its share of the machine's cores.
"""

from __future__ import annotations

import gc
import json
import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import mlflow

from experiments.ablation_stages import Stage1Plan, run_stage1


def run_variant(
    arguments: list[str],
    log_path: Path,
    stage1: Stage1Plan | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[int, str, float]:
    """Train one variant in this process; returns (exit status, error text, seconds).

    With a ``stage1`` plan, its first stage runs (or is reused) first and the variant
    trains on the cohort it wrote, tagged with ``upstream_run``. What the runs print
    goes to ``log_path``, so the ablation's own output stays one line per variant.
    """
    from experiments.fit import run_lightning
    from experiments.tracking import default_tracking_uri

    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with log_path.open("w") as log, quiet(log):
        try:
            if stage1 is not None:
                client = mlflow.MlflowClient(default_tracking_uri())
                manifest, run_id, _ = run_stage1(stage1, client)
                upstream = {
                    **(tags or {}),
                    "upstream_run": run_id,
                    "stage1_hash": stage1.stage_hash,
                }
                arguments = [
                    *arguments,
                    "--data.manifest", manifest,
                    "--data.dataset", str(Path(manifest).parent / "dataset.yaml"),
                    "--trainer.logger.init_args.tags", json.dumps(upstream),
                ]  # fmt: skip
            run_lightning(arguments)
            return 0, "", time.time() - started
        except Exception as error:  # one variant's failure must not stop the grid
            traceback.print_exc(file=log)
            return 1, f"{type(error).__name__}: {error}", time.time() - started


def run_shared_stages(plans: Sequence[Stage1Plan], logs: Path) -> dict[str, str]:
    """Run, in this process and before any variant, each first stage that variants share.

    Variants with one stage-1 hash (pix2pix's translation, which every input set of the
    pseudo-image study reads) would otherwise start it side by side under ``--jobs N``,
    or retry a diverging one once each. Returns ``{stage hash: error}`` of those that failed.
    """
    from experiments.tracking import default_tracking_uri

    counts = Counter(plan.stage_hash for plan in plans)
    shared = {plan.stage_hash: plan for plan in plans if counts[plan.stage_hash] > 1}
    failed = {}
    client = mlflow.MlflowClient(default_tracking_uri()) if shared else None
    for digest, plan in shared.items():
        log_path = logs / f"stage1-{digest}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(
            f"stage 1 {digest} ({plan.method}), shared by {counts[digest]} variants ...", flush=True
        )
        with log_path.open("w") as log, quiet(log):
            # Tagged as the stage of many variants, not as the first one's.
            tags = {k: v for k, v in plan.tags.items() if k != "variant" and "axis." not in k}
            shared_plan = replace(plan, tags={**tags, "stage1_shared_by": str(counts[digest])})
            try:
                run_stage1(shared_plan, client)
            except Exception as error:  # its variants fail with the reason, the rest go on
                traceback.print_exc(file=log)
                failed[digest] = (
                    f"stage 1 {digest} failed: {type(error).__name__}: {error} (see {log_path})"
                )
        print(
            f"stage 1 {digest}: " + ("FAILED, see " + str(log_path) if digest in failed else "ok")
        )
    return failed


def start_worker(threads: int) -> None:
    """Prepare a process that only trains variants: its threads, its libraries, its heap.

    The libraries every variant uses are imported once, then exempted from Python's
    full garbage collections (``spare_the_collector``).
    """
    share_cores(threads)
    import experiments.fit  # noqa: F401  (imported for what it imports)

    spare_the_collector()


def spare_the_collector() -> None:
    """Exempt the objects alive now from Python's full garbage collections.

    A worker holds the imported libraries (torch, Lightning, MLflow, pandas: about
    770,000 objects) for as long as it lives, and each full collection during a variant
    walked them all again: about 0.5 s a variant on a 2-core machine. Garbage is
    collected first, so only reachable objects are frozen; a variant's own objects are
    collected as before. Only for processes that live to train: in a process that goes
    on to other work, frozen objects that later become cyclic garbage stay in memory.
    """
    gc.collect()
    gc.freeze()


def share_cores(threads: int) -> None:
    """Limit a worker process to ``threads`` torch threads (its share of the machine)."""
    import torch

    torch.set_num_threads(threads)


@contextmanager
def quiet(stream: TextIO) -> Iterator[None]:
    """Send prints, warnings (they go to stderr) and Lightning's log lines to ``stream``."""
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
    try:
        with redirect_stdout(stream), redirect_stderr(stream):
            yield
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate


def format_duration(seconds: float) -> str:
    """``83`` -> ``1m23s``."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
