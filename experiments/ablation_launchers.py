"""Where an ablation's variants train: side by side in local processes, or as Ray tasks.

Both launchers take the same jobs (a variant and the arguments of ``run_variant``) and
yield ``(variant, exit status, error, seconds)`` as variants finish, so the runner's
resume logic and MLflow store are the same under either.

- ``run_in_processes``: the embedded default for ``--jobs N`` > 1, a pool of spawned
  processes on this machine.
- ``run_on_ray``: ``--launcher ray [--address HOST:PORT]``, each variant a Ray task
  asking for its share of CPUs and GPUs; without an address a local Ray instance is
  started (and stopped at the end).

Each job limits torch to its share of threads: two torch processes that each use every
core slow each other down many times over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from experiments.ablation_jobs import run_variant, share_cores, spare_the_collector, start_worker

LAUNCHERS = ("local", "ray")
# Environment a Ray worker needs to log where the driver logs.
FORWARDED_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "PYTHONPATH")


@dataclass(frozen=True)
class Share:
    """One job's share of a machine: the resources it asks for, and its torch threads."""

    cpus: float
    gpus: float = 0.0

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


def share_of(jobs: int, resources: dict[str, float] | None = None) -> Share:
    """A job's share: the ablation's ``resources`` for the profile, else cores / jobs."""
    resources = resources or {}
    cpus = resources.get("cpus", max(1, (os.cpu_count() or 1) // jobs))
    return Share(cpus=float(cpus), gpus=float(resources.get("gpus", 0.0)))


def run_in_processes(jobs: Sequence[tuple[Any, tuple]], workers: int, share: Share) -> Iterator:
    """Train ``jobs`` in ``workers`` spawned processes; yield results as they finish."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=start_worker,
        initargs=(share.threads,),
    )
    try:
        futures = {pool.submit(run_variant, *arguments): variant for variant, arguments in jobs}
        for future in as_completed(futures):
            try:
                code, error, seconds = future.result()
            except BrokenProcessPool as broken:  # a worker died (e.g. out of memory)
                code, error, seconds = 1, f"worker process died: {broken}", 0.0
            yield futures[future], code, error, seconds
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _ray_variant(folder: str, environment: dict[str, str], threads: int, *arguments: Any) -> tuple:
    """A Ray task: one variant, run in the driver's folder with its environment and threads."""
    os.chdir(folder)  # the variant's paths (configs, logs, ./mlruns) are the driver's
    os.environ.update(environment)
    share_cores(threads)
    spare_the_collector()  # a Ray worker process only runs tasks
    return run_variant(*arguments)


def run_on_ray(
    jobs: Sequence[tuple[Any, tuple]], share: Share, address: str | None = None
) -> Iterator:
    """Train ``jobs`` as Ray tasks (a local instance unless ``address``); yield as they finish.

    Raises:
        ModuleNotFoundError: Ray is not installed (``pip install versaseg[ray]``).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    environment = {k: os.environ[k] for k in FORWARDED_ENVIRONMENT if k in os.environ}
    task = ray.remote(num_cpus=share.cpus, num_gpus=share.gpus, max_retries=0)(_ray_variant)
    try:
        pending = {
            task.remote(os.getcwd(), environment, share.threads, *arguments): variant
            for variant, arguments in jobs
        }
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            variant = pending.pop(done)
            try:
                code, error, seconds = ray.get(done)
            except ray.exceptions.RayError as failure:  # the worker died or was lost
                code, error, seconds = 1, f"Ray task failed: {failure}", 0.0
            yield variant, code, error, seconds
    finally:
        if started_here:
            ray.shutdown()
