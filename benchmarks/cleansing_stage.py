"""Label cleansing: stage-1 seconds per training subject by method, and its share of the ablation.

Reads the MLflow runs of a finished `make ablation-cleansing` (nothing is trained here):
each stage-1 run's ``stage/seconds`` and ``stage/seconds_per_subject`` (reconstruction,
plus training for the network methods; ITK's first load included), the wall time of
every stage-2 run and of the parent run (the whole ablation).
The peer of a stage 1 is a stage-2 training run of the same ablation: the ratio says how
many training runs one stage 1 costs.

Run: .venv/bin/python benchmarks/cleansing_stage.py [--ablation cleansing] [--profile quick]
Record the numbers in docs/performance.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

import mlflow

from experiments.tracking import default_tracking_uri


def seconds(run: mlflow.entities.Run) -> float:
    return (run.info.end_time - run.info.start_time) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation", default="cleansing")
    parser.add_argument("--experiment", default="cleansing")
    parser.add_argument("--profile", default="quick")
    options = parser.parse_args()

    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name(options.experiment)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {options.experiment!r}: run the ablation first")
    parents = client.search_runs(
        [experiment.experiment_id],
        f"tags.ablation = '{options.ablation}' and tags.ablation_role = 'parent' "
        f"and tags.profile = '{options.profile}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise SystemExit(f"no {options.profile} parent run of ablation {options.ablation!r}")
    children = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{parents[0].info.run_id}' and attributes.status = 'FINISHED'",
        max_results=5000,
    )
    stage1 = [r for r in children if r.data.tags.get("stage") == "labels"]
    stage2 = [r for r in children if r.data.tags.get("tested") == "true"]
    if not stage1 or not stage2:
        raise SystemExit("the ablation has no finished stage-1 or stage-2 runs yet")

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores; profile {options.profile}")
    training = statistics.median(seconds(r) for r in stage2)
    print(f"stage 2 (one training + test run): median {training:.1f} s over {len(stage2)} runs")
    print(f"{'method':<10} {'runs':>4} {'s/subject':>10} {'stage s':>7} {'x stage 2':>9}")
    by_method: dict[str, list[mlflow.entities.Run]] = {}
    for run in stage1:
        method = run.data.tags["cleansing_method"]
        folds = run.data.params.get("model.init_args.selection.folds", "1")
        name = f"{method}/{folds}f" if method == "network" else method
        by_method.setdefault(name, []).append(run)
    for name, runs in sorted(by_method.items()):
        per_subject = statistics.median(r.data.metrics["stage/seconds_per_subject"] for r in runs)
        wall = statistics.median(r.data.metrics["stage/seconds"] for r in runs)
        print(
            f"{name:<10} {len(runs):>4} {per_subject:>10.2f} {wall:>7.1f} {wall / training:>9.2f}"
        )
    total1 = sum(r.data.metrics["stage/seconds"] for r in stage1)
    total2 = sum(seconds(r) for r in stage2)
    print(
        f"share of the runs' time in stage 1: {total1 / (total1 + total2):.1%} "
        f"({total1:.0f} s of {total1 + total2:.0f} s; the parent run, jobs side by side: "
        f"{seconds(parents[0]):.0f} s)"
    )


if __name__ == "__main__":
    main()
