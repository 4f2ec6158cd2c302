"""An ablation's results: its finished child runs -> long frames -> paper tables.

``collect_results`` reads each finished variant's per-case metrics, curves and
run facts from MLflow; ``write_reports`` turns them into ``experiments.tables``
output under ``reports/<ablation>/`` and logs it on the parent run
(``experiments.ablation_parent``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from experiments.ablate import AblationRunner
from experiments.ablation_file import Ablation, AblationError, Variant, row_label
from experiments.ablation_parent import publish
from experiments.per_case import per_case_long
from experiments.stability import PREFIX
from experiments.stability_recorder import PROBE_DICE, PROBE_EPOCH, PROBE_LOSS
from experiments.tables import write_tables
from experiments.tracking import COMPLEXITY
from experiments.training_tables import SUPERVISION_PREFIX


def column_group(ablation: Ablation, variant: Variant, run: mlflow.entities.Run) -> str:
    """The table column group of a run: its ``tables.columns`` entry, else its task."""
    axis = ablation.tables.get("columns")
    return variant.axes[axis] if axis else run.data.params.get("data.task", "multiclass")


@dataclass
class AblationResults:
    """What the tables are made of, as long frames for ``experiments.tables``.

    ``results``: per-case metrics, averaged over seeds; ``seeded_results``: the
    same per seed (a ``seed`` column), for the rank bootstrap; ``stability``: one
    row of ``stability/*`` per run; ``curves``: validation Dice and training loss
    per epoch; ``supervision``: one row per run: ``weak_labels`` (whether it
    trained on weak labels) and its ``weak_label/*``; ``complexity``: one row of network
    parameters and multiply-adds per run. Each carries ``variant`` and ``task``
    (the column group).
    """

    results: Any
    seeded_results: Any
    stability: Any
    curves: Any
    supervision: Any
    complexity: Any


def collect_results(runner: AblationRunner) -> AblationResults:
    """Per-case metrics, stability, curves and run facts of the finished runs.

    Only runs whose config hash belongs to the grid (this profile and data)
    count. With several seeds, per-case values and curves are averaged over the
    seeds of a variant, and stability is averaged over its runs.
    """
    # One download per run: MLflow's progress bars would bury the tables.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    finished = runner.runs.finished_runs([v.config_hash for v in runner.variants])
    per_case, stability, curves, supervision, complexity = [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for variant in runner.variants:
            run = finished.get(variant.config_hash)
            if run is None:
                continue
            run_id = run.info.run_id
            keys = {
                "variant": row_label(runner.ablation, variant),
                "task": column_group(runner.ablation, variant, run),
            }
            metrics = run.data.metrics
            local = runner.runs.client.download_artifacts(
                run_id, "metrics/per_case_metrics.csv", f"{folder}/{run_id}"
            )
            seed = run.data.params.get("seed_everything", "")
            per_case.append(per_case_long(pd.read_csv(local), **keys).assign(seed=seed))
            stability.append(
                {
                    **keys,
                    # Axis entries and the seed: the blocks of the steadiest-entry test.
                    **{f"axis.{axis}": entry for axis, entry in variant.axes.items()},
                    "seed": seed,
                    **{k: v for k, v in metrics.items() if k.startswith(PREFIX)},
                }
            )
            weak = run.data.params.get("data.weak_labels", "None") not in ("None", "[]", "")
            supervision.append(
                {
                    **keys,
                    "weak_labels": weak,
                    **{k: v for k, v in metrics.items() if k.startswith(SUPERVISION_PREFIX)},
                }
            )
            complexity.append(
                {**keys, **{k: metrics.get(f"model/{k}", float("nan")) for k in COMPLEXITY}}
            )
            for epoch, dice, loss in run_curve(runner.runs.client, run_id):
                curves.append({**keys, "epoch": epoch, "val_dice": dice, "train_loss": loss})
    if not per_case:
        raise AblationError(
            f"ablation {runner.ablation.name}: no finished runs for this profile and data yet"
        )
    seeded = pd.concat(per_case, ignore_index=True)
    # Seeds of one variant share a row label: average them per case.
    keys = ["variant", "task", "subject", "class", "metric"]
    results = seeded.groupby(keys, sort=False, as_index=False)["value"].mean()
    curves = pd.DataFrame(curves)
    if not curves.empty:
        curves = curves.groupby(["variant", "task", "epoch"], sort=False, as_index=False).mean()
    return AblationResults(
        results,
        seeded,
        pd.DataFrame(stability),
        curves,
        pd.DataFrame(supervision),
        pd.DataFrame(complexity),
    )


def run_curve(client: mlflow.MlflowClient, run_id: str) -> list[tuple[float, float, float]]:
    """(epoch, validation Dice, training loss) of each point of a run's curve.

    The dense probe curve where the run has one (``experiments.stability_recorder``),
    else the per-epoch ``val/dice_mean`` and ``train/loss``, paired by epoch.
    """
    dice = history(client, run_id, PROBE_DICE)
    if dice:
        epochs = history(client, run_id, PROBE_EPOCH)
        loss = history(client, run_id, PROBE_LOSS)
    else:
        dice = history(client, run_id, "val/dice_mean")
        epochs = [float(epoch) for epoch in range(1, len(dice) + 1)]
        loss = history(client, run_id, "train/loss")
    if len(loss) != len(dice):
        loss = [float("nan")] * len(dice)
    return list(zip(epochs, dice, loss, strict=True))


def history(client: mlflow.MlflowClient, run_id: str, metric: str) -> list[float]:
    """A metric's logged values in step order."""
    return [
        m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
    ]


def write_reports(runner: AblationRunner) -> Path:
    """Tables from the finished runs -> ``runner.reports``, logged on the parent run."""
    collected = collect_results(runner)

    def present(frame: Any) -> Any:
        """The frame, or None when it holds nothing beyond ``variant`` and ``task``."""
        values = frame.drop(columns=["variant", "task"], errors="ignore")
        return None if values.dropna(how="all", axis=1).empty else frame

    complexity = present(collected.complexity)
    if complexity is not None:
        # Only worth a table when the rows train different networks: within a
        # column group (a task's class count sets the head) the sizes differ.
        sizes = complexity.groupby("task")[list(COMPLEXITY)].nunique()
        if sizes.to_numpy().max() < 2:
            complexity = None

    paths = write_tables(
        collected.results,
        present(collected.stability),
        runner.reports,
        title=f"Ablation {runner.ablation.name} (profile {runner.profile})",
        curves=present(collected.curves),
        supervision=collected.supervision if collected.supervision["weak_labels"].any() else None,
        complexity=complexity,
        sparsity=runner.ablation.tables.get("sparsity"),
        rank_resamples=runner.ablation.tables["rank_resamples"],
        rank_seed=runner.ablation.tables["rank_seed"],
        seeded_results=collected.seeded_results,
        stability_axis=runner.ablation.tables.get("stability_axis"),
    )
    if runner.ablation.stage1_config is not None:
        from experiments.cleansing_report import write_cleansing_report
        from experiments.translation_report import write_translation_report

        report = paths["report.md"]
        for write, section in (
            (write_cleansing_report, "label_quality.md"),
            (write_translation_report, "translation_quality.md"),
        ):
            stage_paths = write(runner, runner.reports)
            if section in stage_paths:
                report.write_text(report.read_text() + "\n" + stage_paths[section].read_text())
            paths |= stage_paths
    missing = missing_section(runner)
    if missing:
        paths["report.md"].write_text(paths["report.md"].read_text() + "\n" + missing)
    publish(runner, paths)
    return paths["report.md"]


def missing_section(runner: AblationRunner) -> str:
    """A report section listing the variants the tables lack, with why; '' if none."""
    hashes = [v.config_hash for v in runner.variants]
    finished = runner.runs.finished_runs(hashes)
    outcomes = runner.runs.latest_outcomes(hashes)
    lines = []
    for variant in runner.variants:
        if variant.config_hash in finished:
            continue
        status, error = outcomes.get(variant.config_hash, ("not run", ""))
        lines.append(
            f"- `{variant.name}`: {status}" + (f" ({error.splitlines()[0]})" if error else "")
        )
    if not lines:
        return ""
    return (
        f"## Missing variants\n\n{len(lines)} of {len(runner.variants)} variants have no "
        "finished run, so the tables above leave them out:\n\n" + "\n".join(lines) + "\n"
    )
