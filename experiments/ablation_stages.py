"""The first stage of a two-stage ablation variant: its config layers, hash, run or reuse.

A grid entry that sets ``stage1.method`` (label cleansing: ``raw``, ``nearest``,
``network``, ...; pseudo images: ``pix2pix``) makes its variant two runs. Stage 1
(``experiments.cleanse.run_stage`` or ``experiments.translate.run_stage``)
reads the study's base config, the file's ``stage1.config`` layer, the variant's
``data.*`` keys and its ``stage1.<key>`` keys (prefix dropped), the profile, budget and
settings likewise split; it writes a cohort (manifest + dataset description) under
``reports/<ablation>/stage1/<hash>/``. Stage 2 is the variant's ordinary training run on
that cohort, with ``data.weak_labels`` off (its training labels are stage 1's) and the tag
``upstream_run`` naming the stage-1 run. A rerun finds a finished stage 1 by its hash and
reuses it.

>>> first, second = split_overrides(
...     {"data.weak_labels": ["sparse:4"], "stage1.method": "nearest", "model.x": 1})
>>> first, second
({'data.weak_labels': ['sparse:4'], 'method': 'nearest'}, {'data.weak_labels': None, 'model.x': 1})
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow

from experiments.ablation_file import STAGE1
from experiments.stage_tracking import STAGE_FILE

METHOD = "method"


def has_stage1(overrides: Mapping[str, Any]) -> bool:
    """Whether a variant's overrides ask for a first stage."""
    return STAGE1 + METHOD in overrides


def split_overrides(
    overrides: Mapping[str, Any],
    *,
    two_stage: bool | None = None,
    ignores: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(stage 1, stage 2)`` overrides of one layer.

    Stage 1 gets the ``data.*`` keys but ``ignores`` and the ``stage1.*`` keys without
    their prefix; stage 2 every key but ``stage1.*``, with ``data.weak_labels`` off when
    the variant has a first stage (``two_stage``; by default: when this layer names a
    method).
    """
    two_stage = has_stage1(overrides) if two_stage is None else two_stage
    first = {
        key: value
        for key, value in overrides.items()
        if key.startswith("data.") and key not in ignores
    }
    first |= {key[len(STAGE1) :]: v for key, v in overrides.items() if key.startswith(STAGE1)}
    second = {key: value for key, value in overrides.items() if not key.startswith(STAGE1)}
    if two_stage and "data.weak_labels" in second:
        second["data.weak_labels"] = None
    return first, second


@dataclass(frozen=True)
class Stage1Plan:
    """One variant's first stage: its method, ``fit``-style arguments and output folder."""

    method: str
    arguments: list[str]
    output: Path
    stage_hash: str
    tags: dict[str, str] = field(default_factory=dict)


def stage_hash(payload: Mapping[str, Any]) -> str:
    """A digest of what decides a first stage's output (configs, layers, seed, data)."""
    encoded = json.dumps(dict(payload), sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def finished_stage(plan: Stage1Plan, client: mlflow.MlflowClient) -> tuple[str, str] | None:
    """``(manifest, run id)`` of a finished first stage with the plan's hash, if one exists.

    It counts when its folder records a run that MLflow has as FINISHED with
    ``stage_complete``, and the manifest it wrote is still there.
    """
    record_path = plan.output / STAGE_FILE
    manifest = plan.output / "manifest.csv"
    if not record_path.is_file() or not manifest.is_file():
        return None
    run_id = json.loads(record_path.read_text()).get("run_id")
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    complete = run.data.tags.get("stage_complete") == "true"
    if run.info.status != "FINISHED" or not complete:
        return None
    return str(manifest), run_id


def stage_module(method: str) -> ModuleType:
    """The stage module that implements ``method``: ``experiments.cleanse`` or ``.translate``.

    Raises:
        ValueError: for a method no stage has, listing the known ones.
    """
    from experiments import cleanse, translate

    for module in (cleanse, translate):
        if method in module.METHODS:
            return module
    known = [*cleanse.METHODS, *translate.METHODS]
    raise ValueError(f"unknown stage1.method {method!r}; the stages know {known}")


def run_stage1(plan: Stage1Plan, client: mlflow.MlflowClient) -> tuple[str, str, bool]:
    """Run a first stage, or reuse a finished one; ``(manifest, run id, reused)``."""
    done = finished_stage(plan, client)
    if done is not None:
        print(f"stage 1 {plan.stage_hash}: reusing run {done[1]} ({done[0]})")
        return (*done, True)
    tags = ["--trainer.logger.init_args.tags", json.dumps(plan.tags)]
    run_stage = stage_module(plan.method).run_stage
    result = run_stage([*plan.arguments, *tags], method=plan.method, output=plan.output)
    return str(result.manifest), result.run_id, False
