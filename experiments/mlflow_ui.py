"""How versaseg's experiments look in the MLflow UI, and the addresses that open them.

MLflow 3.17's UI opens an experiment as GenAI development (traces, judges, prompts)
unless told otherwise. Every experiment versaseg creates or logs to gets:

- the tag ``mlflow.experimentKind = custom_model_development`` (model training);
- a description (``mlflow.note.content``) of its research thread and of the
  command that fills it, from ``experiments/configs/threads.yaml``;
- a shared view (``mlflow.sharedViewState.versaseg``) whose runs table shows the
  thread's headline metrics and the ablations' axis tags.

The UI's own GenAI / model-training switch outranks the kind tag in 3.17 (it
defaults to GenAI), so ``ui_url`` also selects model training in the address.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mlflow
import yaml

THREADS_FILE = Path(__file__).resolve().parent / "configs" / "threads.yaml"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
VIEW_KEY = "versaseg"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The query that switches the UI to model training and applies the shared view.
WORKFLOW_QUERY = "workflowType=machine_learning"
VIEW_QUERY = f"viewStateShareKey={VIEW_KEY}&{WORKFLOW_QUERY}"


@dataclass(frozen=True)
class Thread:
    """What one research thread's experiment holds, what fills it, what to show."""

    holds: str
    filled_by: str
    columns: tuple[str, ...]

    def note(self, experiment: str) -> str:
        """The experiment's description; plain text, as the experiments list shows it raw."""
        return f"{experiment}: {self.holds}. Filled by: {self.filled_by}."


@cache
def _threads() -> dict:
    return yaml.safe_load(THREADS_FILE.read_text())


def thread(experiment: str) -> Thread:
    """The thread of an experiment name; a name not in ``threads.yaml`` gets ``default``."""
    content = _threads()
    entry = content["threads"].get(experiment)
    if entry is None:
        entry = {
            key: value.format(name=experiment) if isinstance(value, str) else value
            for key, value in content["default"].items()
        }
    return Thread(entry["holds"], entry["filled_by"], tuple(entry["columns"]))


def column_key(kind: str, name: str) -> str:
    """The UI's name of a runs-table column: ``metrics.`test/dice_mean```."""
    return f"{kind}.`{name}`"


def describe_experiment(
    client: mlflow.MlflowClient, experiment_id: str, axes: Iterable[str] = ()
) -> None:
    """Tag an experiment as model training, describe its thread, show its columns.

    A description someone wrote in the UI is kept. ``axes``: ablation axes whose
    ``axis.<name>`` tags join the runs table's columns (those of earlier ablations
    in the experiment stay).
    """
    experiment = client.get_experiment(experiment_id)
    tags = experiment.tags
    spec = thread(experiment.name)
    wanted = {EXPERIMENT_KIND_TAG: MODEL_TRAINING}
    if not tags.get(NOTE_TAG):
        wanted[NOTE_TAG] = spec.note(experiment.name)
    view = json.loads(tags.get(VIEW_TAG) or "{}")
    columns = list(view.get("selectedColumns", []))
    new = [column_key("tags", f"axis.{axis}") for axis in axes]
    new += [column_key("metrics", metric) for metric in spec.columns]
    # Axis tags before metrics, as in the tables: what varies, then what it gave.
    columns = [c for c in columns if c.startswith("tags.")] + [
        c for c in new if c.startswith("tags.") and c not in columns
    ]
    columns += [c for c in new if c.startswith("metrics.")]
    wanted[VIEW_TAG] = json.dumps({"selectedColumns": columns})
    for key, value in wanted.items():
        if tags.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)


def ui_url(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The address of an experiment's runs table (or of one run) in the training view."""
    page = f"{base.rstrip('/')}/#/experiments/{experiment_id}"
    if run_id is None:
        return f"{page}/runs?{VIEW_QUERY}"
    return f"{page}/runs/{run_id}?{WORKFLOW_QUERY}"


def latest_ablation(client: mlflow.MlflowClient) -> mlflow.entities.Run | None:
    """The newest ablation parent run of the store, or None."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        "tags.ablation_role = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def ui_addresses(store: str, base: str) -> list[str]:
    """Lines naming where to look: the experiments list and the newest ablation.

    ``store``: the tracking URI to read; ``base``: the UI's address.
    """
    lines = [f"  experiments:      {base.rstrip('/')}/#/experiments?{WORKFLOW_QUERY}"]
    client = mlflow.MlflowClient(store)
    try:
        parent = latest_ablation(client)
    except mlflow.exceptions.MlflowException as error:
        return [*lines, f"  (cannot read the store: {error.message})"]
    if parent is None:
        return [*lines, "  no ablation yet: `make ablation-losses` runs the first"]
    experiment = parent.info.experiment_id
    name = parent.data.tags.get("ablation", parent.info.run_name)
    return [
        *lines,
        f"  latest ablation:  {name} ({parent.data.tags.get('profile', '?')}), its runs table:",
        f"                    {ui_url(base, experiment)}",
        f"  its parent run:   {ui_url(base, experiment, parent.info.run_id)}",
    ]
