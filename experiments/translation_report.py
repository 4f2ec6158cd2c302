"""The pseudo-image study's own report: translation quality and one slice per input set.

Beside the downstream tables every ablation gets (``experiments.tables``), a study whose
first stage translates images (``stage1.method: pix2pix``) gets:

- ``translation_quality.{md,csv}``: MAE, PSNR and SSIM of the generated images inside the
  head, mean ± std over the subjects of each split (training subjects are in-sample: the
  generator trained on them; validation and test subjects are not);
- ``segmentation_<structure>.png`` for each thin structure task (the phantom's vessels):
  one test subject's axial slice, the source image with the truth, then each input set's
  segmentation, read from the runs' ``figures/example_case.npz``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.ablation_file import row_label
from experiments.figures import most_informative_slice
from experiments.table_format import format_markdown, format_mean_std, mean_std_by
from experiments.translate import QUALITY_FILE
from lightning_modules.image_metrics import IMAGE_METRICS

EXAMPLE_ARTIFACT = "figures/example_case.npz"


def translation_quality(runner: Any) -> pd.DataFrame:
    """Long frame ``stage, split, subject, metric, value`` of every finished translation."""
    frames, seen = [], set()
    for variant in runner.variants:
        found = runner.stage1_output(variant)
        if found is None or found[0] in seen or not (found[1] / QUALITY_FILE).is_file():
            continue
        seen.add(found[0])
        quality = pd.read_csv(found[1] / QUALITY_FILE)
        long = quality.melt(
            id_vars=["split", "subject"], value_vars=list(IMAGE_METRICS), var_name="metric"
        )
        frames.append(long.assign(stage=found[0]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def quality_table(long: pd.DataFrame, decimals: int = 3) -> pd.DataFrame:
    """Rows ``(stage, split)``, one column per metric: ``mean ± std`` over subjects."""
    stats = mean_std_by(long, ["stage", "split", "metric"])
    stats["cell"] = [
        format_mean_std(m, s, decimals=decimals)
        for m, s in zip(stats["mean"], stats["std"], strict=True)
    ]
    table = stats.pivot_table(
        index=["stage", "split"], columns="metric", values="cell", aggfunc="first"
    )
    splits = [s for s in ("train", "val", "test") if s in set(long["split"])]
    index = [(st, sp) for st in dict.fromkeys(long["stage"]) for sp in splits]
    return table.reindex(index=[i for i in index if i in table.index], columns=list(IMAGE_METRICS))


def write_translation_report(runner: Any, out_dir: Path) -> dict[str, Path]:
    """Write the translation-quality table and the segmentation figures; paths by name."""
    long = translation_quality(runner)
    if long.empty:
        return {}
    paths = {"translation_quality.csv": out_dir / "translation_quality.csv"}
    long.to_csv(paths["translation_quality.csv"], index=False)
    table = quality_table(long)
    paths["translation_quality.md"] = out_dir / "translation_quality.md"
    paths["translation_quality.md"].write_text(
        "## Stage 1: generated images against the real target inside the head (mean ± std "
        "over subjects; train is in-sample)\n\n" + format_markdown(table) + "\n"
    )
    for structure in runner.description.thin_structures:
        figure = segmentation_figure(runner, structure)
        if figure is not None:
            path = out_dir / f"segmentation_{structure}.png"
            figure.savefig(path, dpi=90)
            paths[path.name] = path
    return paths


def examples(runner: Any, structure: str) -> dict[str, dict[str, np.ndarray]]:
    """Table row -> the example test case of its run on ``structure``'s binary task."""
    finished = runner.runs.finished_runs([v.config_hash for v in runner.variants])
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in runner.variants:
            run = finished.get(variant.config_hash)
            if run is None or run.data.params.get("data.task") != f"binary:{structure}":
                continue
            try:
                local = runner.runs.client.download_artifacts(
                    run.info.run_id, EXAMPLE_ARTIFACT, f"{folder}/{run.info.run_id}"
                )
            except Exception:  # a run from before examples were kept: no panel
                continue
            with np.load(local) as arrays:
                found[row_label(runner.ablation, variant)] = dict(arrays)
    return found


def segmentation_figure(runner: Any, structure: str) -> Figure | None:
    """The source with the truth, then each input set's segmentation of one slice."""
    cases = examples(runner, structure)
    if not cases:
        return None
    first = next(iter(cases.values()))
    same = {name: case for name, case in cases.items() if case["subject"] == first["subject"]}
    k = most_informative_slice(first["truth"])

    def view(volume: np.ndarray) -> np.ndarray:
        return np.flipud(volume[:, :, k].T)

    figure = Figure(figsize=(2.8 * (len(same) + 1), 3.4), layout="constrained")
    axes = figure.subplots(1, len(same) + 1)
    panels = [("truth", first["truth"]), *((name, c["prediction"]) for name, c in same.items())]
    for axis, (title, labels) in zip(axes, panels, strict=True):
        axis.imshow(view(first["image"]), cmap="gray")
        shown = np.ma.masked_equal(view(labels), 0)
        axis.imshow(shown, cmap="autumn", alpha=0.7, interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(
        f"{structure}: {first['subject']}, axial slice {k}; background: the first input channel"
    )
    return figure
