"""Evaluation cost: a test case's class indices and metrics, the project's against plain calls.

A test case (and every validation volume) turns the network's logits into class indices
and, for a test case, into Dice, HD95, ASSD, precision and recall per structure.
The project takes the indices with ``inference.class_indices`` (``torch.max``) and
computes each structure's surface distances once for HD95 and ASSD
(``metrics.case_metrics``). The peer is what a user would write: ``logits.argmax(0)``
and MONAI's ``compute_hausdorff_distance`` plus ``compute_average_surface_distance``,
which compute the same distances twice. Both run on a phantom test case (its label as
the truth; the prediction is the truth shifted by one voxel, with a blob of cerebrum far
from the brain, as an undertrained network leaves it) and logits that give that
prediction. Calls take turns; the figures are ratios of medians, and the script checks
that both give the same indices and the same numbers.

Run: .venv/bin/python -m benchmarks.evaluation_cost [--rounds 15] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from torch.nn import functional as F

from benchmarks.bench_common import PHANTOM, Row, interleaved, parse_options, print_rows, quiet
from datamodules.dataset import load_description
from datamodules.labels import read_label
from datamodules.manifest import read_manifest
from datamodules.tasks import parse_task
from lightning_modules.inference import class_indices
from lightning_modules.metrics import case_metrics


def phantom_case(manifest: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], list[float]]:
    """Logits ``(K, H, W, D)`` and the truth of the manifest's first subject, class names and
    voxel spacing."""
    description = load_description(manifest, None)
    task = parse_task("multiclass", dict(description.class_map))
    record = read_manifest(manifest, description.channels)[0]
    truth = torch.from_numpy(task.index_volume(read_label(record.label)))
    prediction = truth.roll(1, dims=0)
    prediction[4:8, 4:8, 4:8] = 1  # far from the brain: an undertrained network's blob
    # Contiguous, class axis first, as inference.predict_volume returns them.
    logits = 4.0 * F.one_hot(prediction, task.num_classes).movedim(-1, 0).contiguous().float()
    logits += torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
    spacing = [float(s) for s in nib.load(record.label).header.get_zooms()[:3]]
    return logits, truth, list(task.class_names), spacing


def monai_case_metrics(
    prediction: torch.Tensor, truth: torch.Tensor, num_classes: int, spacing: list[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """HD95 and ASSD of every structure the plain way: MONAI's two metric functions."""
    predicted = F.one_hot(prediction, num_classes).movedim(-1, 0).unsqueeze(0)
    actual = F.one_hot(truth, num_classes).movedim(-1, 0).unsqueeze(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(predicted, actual, percentile=95, spacing=spacing)
        assd = compute_average_surface_distance(predicted, actual, symmetric=True, spacing=spacing)
    return hd95[0], assd[0]


def medians(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each call, the calls taking turns (``bench_common.interleaved``)."""

    def timed(call: Callable[[], object]) -> Callable[[], list[float]]:
        def run() -> list[float]:
            start = time.perf_counter()
            call()
            return [time.perf_counter() - start]

        return run

    samples = interleaved({name: timed(call) for name, call in calls.items()}, rounds)
    return {name: statistics.median(values) for name, values in samples.items()}


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """Two rows: class indices, and a test case's metrics. ``scratch`` is unused."""
    logits, truth, names, spacing = phantom_case(options.manifest)
    prediction = class_indices(logits)
    same_indices = torch.equal(prediction, logits.argmax(0))
    indices = medians(
        {"project": lambda: class_indices(logits), "argmax": lambda: logits.argmax(0)},
        options.rounds,
    )
    table = case_metrics(prediction, truth, class_names=names, spacing=spacing)
    hd95, assd = monai_case_metrics(prediction, truth, len(names), spacing)
    same_metrics = np.array_equal(table["hd95"], hd95.numpy()) and np.array_equal(
        table["assd"], assd.numpy()
    )
    metrics = medians(
        {
            "project": lambda: case_metrics(prediction, truth, class_names=names, spacing=spacing),
            "monai": lambda: monai_case_metrics(prediction, truth, len(names), spacing),
        },
        options.rounds,
    )
    shape = "x".join(str(s) for s in logits.shape)
    return [
        Row(
            "class indices of a volume's logits: class_indices / argmax(0)",
            "(informs)",
            f"{indices['project'] / indices['argmax']:.2f}x",
            None,
            f"{indices['project'] * 1e3:.1f} against {indices['argmax'] * 1e3:.1f} ms, logits "
            f"{shape}, median of {options.rounds}; same indices: {'yes' if same_indices else 'NO'}",
            indices["project"] / indices["argmax"],
        ),
        Row(
            "test case metrics: case_metrics / MONAI's HD95 and ASSD calls",
            "(informs)",
            f"{metrics['project'] / metrics['monai']:.2f}x",
            None,
            f"{metrics['project'] * 1e3:.0f} against {metrics['monai'] * 1e3:.0f} ms (the "
            f"project's also gives Dice, precision, recall), {len(names) - 1} structures, "
            f"median of {options.rounds}; same HD95 and ASSD: "
            f"{'yes' if same_metrics else 'NO'}",
            metrics["project"] / metrics["monai"],
        ),
    ]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help=f"cohort (default {PHANTOM})")
    parser.add_argument("--rounds", type=int, help="calls of each, in turns (default 15)")
    return parse_options(
        parser,
        argv,
        full={"manifest": PHANTOM, "rounds": 15},
        tiny={"manifest": PHANTOM, "rounds": 3},
    )


def main() -> None:
    quiet()
    torch.set_num_threads(1)  # as each of an ablation's two jobs trains
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
