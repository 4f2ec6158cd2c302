"""Searching the MLflow store safely, and closing runs whose process died.

- ``literal``: a value as an MLflow filter-string literal. MLflow has no escape
  character, so a value is quoted with the quote it does not contain.
- ``close_dead_runs``: a process killed outright (SIGKILL, out of memory, a full disk)
  cannot end its run, which would stay RUNNING for good. Each run records the host and
  process that own it (``owner_tags``); the next ``fit`` or ``ablate`` against the store
  closes, as KILLED, every RUNNING run of this host whose process is gone. Runs of other
  machines are left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import os
import socket

import mlflow

HOST_TAG = "versaseg.host"
PID_TAG = "versaseg.pid"
DEAD_RUN_ERROR = "its process ended without closing the run (killed, or out of memory or disk)"


def literal(text: str) -> str:
    """``text`` as a string literal of an MLflow filter, in whichever quotes it lacks.

    Raises:
        ValueError: for text holding both quote characters (MLflow cannot escape them).
    """
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise ValueError(f"{text!r} holds both quote characters; MLflow cannot search for it")


def owner_tags() -> dict[str, str]:
    """The tags naming this process as the owner of a run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def close_dead_runs(client: mlflow.MlflowClient, keep: str | None = None) -> int:
    """Mark RUNNING runs of this host whose process has gone KILLED; returns how many.

    ``keep``: a run id never to touch (the caller's own run).
    """
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = {literal(socket.gethostname())}"
    closed = 0
    for run in client.search_runs(experiments, query):
        pid = run.data.tags.get(PID_TAG, "")
        if run.info.run_id == keep or not pid.isdigit() or process_alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "error", DEAD_RUN_ERROR)
        client.set_terminated(run.info.run_id, "KILLED")
        closed += 1
    return closed
