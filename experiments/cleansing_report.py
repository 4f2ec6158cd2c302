"""The label-cleansing study's own report: stage-1 label quality and what the labels look like.

Beside the downstream tables every ablation gets (``experiments.tables``), a study with
a first stage (``stage1:`` in its file) gets:

- ``label_quality.{md,csv}``: each method's reconstructed training labels against the
  truth, per label condition and class: Dice, HD95 and ASSD (mm), mean ± std over the
  training subjects (``experiments.table_format``'s rule);
- ``labels_<condition>.png``: one training subject of each condition, an axial slice that
  was not labelled and a coronal view across slices (where slice-to-slice jumps show):
  truth, the weak label, then each method's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from datamodules.manifest import read_manifest
from experiments.figures import CLASS_COLOURS
from experiments.table_format import format_markdown, format_mean_std, mean_std_by

QUALITY_METRICS = ("dice", "hd95", "assd")


def stage_outputs(runner: Any) -> pd.DataFrame:
    """One row per two-stage variant whose first stage finished: condition, method, folder."""
    columns = runner.ablation.tables.get("columns")
    rows_axes = runner.ablation.tables.get("rows") or []
    rows = []
    for variant in runner.variants:
        found = runner.stage1_output(variant)
        if found is None or not (found[1] / "label_quality.csv").is_file():
            continue
        rows.append(
            {
                "condition": variant.axes.get(columns, ""),
                "method": "+".join(variant.axes[a] for a in rows_axes) or variant.name,
                "output": found[1],
            }
        )
    return pd.DataFrame(rows, columns=["condition", "method", "output"])


def label_quality(outputs: pd.DataFrame) -> pd.DataFrame:
    """Long frame ``condition, method, subject, class, metric, value`` of every stage 1."""
    frames = []
    for row in outputs.itertuples():
        quality = pd.read_csv(Path(row.output) / "label_quality.csv")
        long = quality.melt(
            id_vars=["subject", "class"], value_vars=list(QUALITY_METRICS), var_name="metric"
        )
        frames.append(long.assign(condition=row.condition, method=row.method))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def label_quality_table(long: pd.DataFrame, decimals: int = 3) -> pd.DataFrame:
    """Rows ``(condition, method)``, columns ``metric / class``: ``mean ± std`` cells."""
    stats = mean_std_by(long, ["condition", "method", "metric", "class"])
    stats["cell"] = [
        format_mean_std(m, s, decimals=decimals)
        for m, s in zip(stats["mean"], stats["std"], strict=True)
    ]
    table = stats.pivot_table(
        index=["condition", "method"], columns=["metric", "class"], values="cell", aggfunc="first"
    )
    order = [(m, c) for m in QUALITY_METRICS for c in dict.fromkeys(long["class"])]
    table = table.reindex(columns=[key for key in order if key in table.columns])
    conditions = list(dict.fromkeys(long["condition"]))
    methods = list(dict.fromkeys(long["method"]))
    index = [(c, m) for c in conditions for m in methods if (c, m) in table.index]
    return table.reindex(index)


def write_cleansing_report(runner: Any, out_dir: Path) -> dict[str, Path]:
    """Write the label-quality table and one figure per condition; their paths by name."""
    outputs = stage_outputs(runner)
    if outputs.empty:
        return {}
    long = label_quality(outputs)
    table = label_quality_table(long)
    paths = {"label_quality.csv": out_dir / "label_quality.csv"}
    long.to_csv(paths["label_quality.csv"], index=False)
    table.columns = [f"{metric} {name}" for metric, name in table.columns]
    paths["label_quality.md"] = out_dir / "label_quality.md"
    paths["label_quality.md"].write_text(
        "## Stage 1: training-label quality against the truth (mean ± std over training "
        "subjects; HD95 and ASSD in mm)\n\n" + format_markdown(table) + "\n"
    )
    truth = {
        r.subject: r.label for r in read_manifest(runner.manifest, runner.description.channels)
    }
    class_map = runner.description.class_map
    for condition, rows in outputs.groupby("condition", sort=False):
        figure = condition_figure(condition, rows, truth, class_map)
        path = out_dir / f"labels_{condition}.png"
        figure.savefig(path, dpi=90)
        paths[path.name] = path
    return paths


def condition_figure(
    condition: str,
    rows: pd.DataFrame,
    truth: dict[str, Path],
    class_map: dict[int, str],
) -> Figure:
    """Truth, weak label and each method's label of one subject: axial and coronal views."""
    first = Path(rows["output"].iloc[0])
    subject = sorted(p.name.removesuffix("_label.nii.gz") for p in (first / "labels").iterdir())[0]
    panels: list[tuple[str, np.ndarray]] = [("truth", _read(truth[subject]))]
    for row in rows.itertuples():
        label = _read(Path(row.output) / "labels" / f"{subject}_label.nii.gz")
        panels.append(("weak label (raw)" if row.method == "raw" else row.method, label))
    axial = _unlabelled_slice(panels)
    coronal = panels[0][1].shape[1] // 2
    values = sorted(class_map)
    colours = ListedColormap([(0, 0, 0, 1), *CLASS_COLOURS[: len(values)]])
    lookup = np.zeros(max(values) + 1, dtype=int)
    lookup[values] = np.arange(1, len(values) + 1)
    figure = Figure(figsize=(2.2 * len(panels), 5.0), layout="constrained")
    axes = figure.subplots(2, len(panels), squeeze=False)
    for column, (title, label) in enumerate(panels):
        indices = lookup[np.clip(label, 0, max(values))]
        views = (np.flipud(indices[:, :, axial].T), np.flipud(indices[:, coronal, :].T))
        for row, view in enumerate(views):
            axis = axes[row][column]
            axis.imshow(view, cmap=colours, vmin=0, vmax=len(values), interpolation="nearest")
            axis.axis("off")
        axes[0][column].set_title(title, fontsize=9)
    handles = [Patch(color=CLASS_COLOURS[i], label=class_map[v]) for i, v in enumerate(values)]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(
        f"{condition}: {subject}, axial slice {axial} (top) and coronal slice {coronal} "
        "(bottom, slices bottom to top)"
    )
    return figure


def _read(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).astype(np.int64)


def _unlabelled_slice(panels: Sequence[tuple[str, np.ndarray]]) -> int:
    """An axial slice where the weak label differs most from the truth (a slice to fill)."""
    truth = panels[0][1]
    weak = next((label for title, label in panels if title.startswith("weak")), truth)
    errors = (weak != truth).sum(axis=(0, 1))
    return int(np.argmax(errors)) if errors.any() else truth.shape[2] // 2
