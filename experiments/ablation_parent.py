"""What an ablation shows in the MLflow UI: its parent run's page and its children's.

``publish`` runs after the tables are written. The parent run gets:

- ``report.md`` at the top of its artifacts, ``tables/`` (Markdown, CSV, LaTeX),
  ``figures/`` (the PNGs), ``grid.csv`` (one row per variant: axes, seed, config
  hash, status, run id, headline metric) and the ablation file as ``ablation.yaml``;
- one summary metric per table (``summary/<task>/best_dice_mean``,
  ``ranking/<group>/top_rank_score``, ...), and ``best.<group>`` tags;
- a description: the grid, how many variants finished, who ranks first.

Each child's description names its variant, what it changed from the base config
and its headline test numbers (``experiments.run_notes``).
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from experiments.run_notes import set_note, shown_path, variant_note

TABLE_SUFFIXES = (".md", ".csv", ".tex")


def publish(runner: Any, paths: Mapping[str, Path]) -> None:
    """Log the tables, figures, grid and descriptions of ``runner``'s ablation."""
    client = runner.runs.client
    parent = runner.runs.find_parent()
    if parent is None:
        return
    finished = runner.runs.finished_runs([v.config_hash for v in runner.variants])
    for name, path in paths.items():
        if name == "report.md":
            client.log_artifact(parent, str(path))
        elif path.suffix == ".png":
            client.log_artifact(parent, str(path), "figures")
        elif path.suffix in TABLE_SUFFIXES:
            client.log_artifact(parent, str(path), "tables")
    if runner.ablation.source is not None:
        client.log_text(parent, runner.ablation.source.read_text(), "ablation.yaml")
    grid = grid_table(runner, finished)
    with tempfile.TemporaryDirectory() as folder:
        grid_path = Path(folder) / "grid.csv"
        grid.to_csv(grid_path, index=False)
        client.log_artifact(parent, str(grid_path))
    metrics = summary_metrics(paths)
    if metrics:
        # Step: how many variants had finished; a later report's values then win.
        now, step = int(time.time() * 1000), int((grid["status"] == "FINISHED").sum())
        client.log_batch(
            parent,
            metrics=[mlflow.entities.Metric(key_safe(k), v, now, step) for k, v in metrics.items()],
        )
    leaders = leaders_by_group(paths)
    for group, names in leaders.items():
        client.set_tag(parent, key_safe(f"best.{group}"), ", ".join(names))
    set_note(client, parent, parent_note(runner, grid, leaders))
    # Variants with one config share one run (named after the first): one note per run.
    sharing: dict[str, list[Any]] = {}
    for variant in runner.variants:
        sharing.setdefault(variant.config_hash, []).append(variant)
    for config_hash, variants in sharing.items():
        run = finished.get(config_hash)
        if run is None:
            continue
        named = run.data.tags.get("variant")
        variant = next((v for v in variants if v.name == named), variants[0])
        note = child_note(runner, variant, run.data.metrics)
        if len(variants) > 1:
            note += "\n\nShared by the variants " + ", ".join(v.name for v in variants) + "."
        set_note(client, run.info.run_id, note)


def key_safe(name: str) -> str:
    """A metric or tag key MLflow accepts: other characters (``=``, ``+``) become ``_``.

    >>> key_safe("summary/k=2+noise/best_dice_mean")
    'summary/k_2_noise/best_dice_mean'
    """
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", name)


def child_note(
    runner: Any, variant: Any, metrics: Mapping[str, float] | None = None, error: str = ""
) -> str:
    """The description of one variant's run."""
    return variant_note(
        ablation=runner.ablation.name,
        variant=variant.name,
        profile=runner.profile,
        seed=variant.seed,
        base_config=str(runner.ablation.config),
        overrides=variant.overrides,
        metrics=metrics,
        error=error or None,
    )


def grid_table(runner: Any, finished: Mapping[str, mlflow.entities.Run]) -> pd.DataFrame:
    """One row per variant: name, axes, seed, hash, status, run id, test Dice.

    The status of a variant without a finished run is its newest run's (FAILED,
    KILLED, RUNNING), or ``not run``.
    """
    outcomes = runner.runs.latest_outcomes([v.config_hash for v in runner.variants])
    rows = []
    for variant in runner.variants:
        run = finished.get(variant.config_hash)
        status = outcomes.get(variant.config_hash, ("not run", ""))[0]
        rows.append(
            {
                "variant": variant.name,
                **{f"axis.{axis}": value for axis, value in variant.axes.items()},
                "seed": variant.seed,
                "config_hash": variant.config_hash,
                "status": "FINISHED" if run is not None else status,
                "run_id": run.info.run_id if run is not None else "",
                "test/dice_mean": (
                    run.data.metrics.get("test/dice_mean", math.nan) if run else math.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def summary_metrics(paths: Mapping[str, Path]) -> dict[str, float]:
    """One number per table and column group, for the parent's metrics.

    - ``summary/<task>/best_dice_mean``: the best variant's Dice, averaged over classes;
    - ``ranking/<group>/top_rank_score``: the rank score of rank 1;
    - ``stability/<task>/lowest_val_dice_std``: the steadiest validation curve;
    - ``complexity/max_parameters``: the largest network.
    """
    metrics: dict[str, float] = {}
    if "summary.csv" in paths:
        summary = pd.read_csv(paths["summary.csv"])
        dice = summary[summary["metric"] == "dice"]
        best = dice.groupby(["task", "variant"])["mean"].mean().groupby("task").max()
        metrics |= {f"summary/{task}/best_dice_mean": value for task, value in best.items()}
    if "ranking.csv" in paths:
        ranking = pd.read_csv(paths["ranking.csv"])
        top = ranking.groupby("group")["rank_score"].max()
        metrics |= {f"ranking/{group}/top_rank_score": value for group, value in top.items()}
    if "stability.csv" in paths:
        stability = pd.read_csv(paths["stability.csv"])
        if "val_dice_std_last_quarter" in stability:
            steadiest = stability.groupby("task")["val_dice_std_last_quarter"].min()
            metrics |= {
                f"stability/{task}/lowest_val_dice_std": value for task, value in steadiest.items()
            }
    if "complexity.csv" in paths:
        # One row per network (the variants that train it), whatever the task.
        metrics["complexity/max_parameters"] = pd.read_csv(paths["complexity.csv"])[
            "parameters"
        ].max()
    return {key: float(value) for key, value in metrics.items() if not math.isnan(value)}


def leaders_by_group(paths: Mapping[str, Path]) -> dict[str, list[str]]:
    """The rank-1 variants of each ranking group (ties share rank 1)."""
    if "ranking.csv" not in paths:
        return {}
    ranking = pd.read_csv(paths["ranking.csv"])
    first = ranking[ranking["rank"] == ranking.groupby("group")["rank"].transform("min")]
    sizes = ranking.groupby("group").size()
    return {
        str(group): [str(v) for v in rows["variant"]]
        if len(rows) < sizes[group]
        else [f"all {len(rows)} tie"]
        for group, rows in first.groupby("group", sort=False)
    }


def parent_note(runner: Any, grid: pd.DataFrame, leaders: Mapping[str, list[str]]) -> str:
    """The parent run's description: grid, progress, leaders, where the tables are."""
    axes = " x ".join(
        f"{axis} ({', '.join(entries)})" for axis, entries in _axis_entries(runner).items()
    )
    done = int((grid["status"] == "FINISHED").sum())
    lines = [
        f"Ablation **{runner.ablation.name}** (profile {runner.profile}) on `{runner.manifest}`.",
        "",
        f"Grid: {axes}; seeds {sorted({v.seed for v in runner.variants})}: "
        f"{len(grid)} variants, {done} finished"
        + (f", {len(grid) - done} missing." if done < len(grid) else "."),
        f"Base config: `{shown_path(runner.ablation.config)}`.",
    ]
    if leaders:
        ranked = "; ".join(f"{group}: {', '.join(names)}" for group, names in leaders.items())
        lines += ["", f"Rank 1 (pairwise Wilcoxon rank score): {ranked}."]
    lines += [
        "",
        "Artifacts: `report.md` (every table), `tables/` (Markdown, CSV, LaTeX), "
        "`figures/`, `grid.csv`. Expand this run in the runs table for its variants.",
    ]
    return "\n".join(lines)


def _axis_entries(runner: Any) -> dict[str, list[str]]:
    """Each axis's entries as the variants name them (placeholders filled)."""
    entries: dict[str, list[str]] = {}
    for variant in runner.variants:
        for axis, value in variant.axes.items():
            entries.setdefault(axis, [])
            if value not in entries[axis]:
                entries[axis].append(value)
    return entries
