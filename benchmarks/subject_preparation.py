"""Subject preparation: the transforms of a training subject, the project's against TorchIO's.

Every training subject is read (unless cached), remapped to class indices, augmented and
normalised before its patches are cut (``datamodules.transforms.subject_transform``).
The project builds those steps with ``copy=False`` (TorchIO's ``Compose`` already copies
the subject once) and remaps labels through a lookup table (``LookupRemapLabels``). The
peer is the same pipeline as TorchIO's defaults build it: every step deep-copies the
subject, and ``tio.RemapLabels`` remaps. Both prepare the same subjects from the same
seed, taking turns; the figure is the median ratio of paired passes. Each round also
checks that both give the same tensors and leave torch's random stream in the same
state, which is what lets a run's numbers stay what they were.

Two settings: the ``quick`` profile as ``versaseg fit`` ships it (volumes read every
epoch), and the loss study's (``data.cache_subjects`` and ``data.distance_maps``: a
distance map per class travels with every subject).

Run: .venv/bin/python -m benchmarks.subject_preparation [--rounds 8] [--tiny]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torchio as tio

from benchmarks.bench_common import Row, parse_options, print_rows, project_cli, quiet
from datamodules.transforms import LookupRemapLabels

SETTINGS = {
    "quick fit": (),
    "loss study (cached, distance maps)": (
        "--data.cache_subjects",
        "true",
        "--data.distance_maps",
        "true",
    ),
}


def stock_steps(transform: tio.Compose) -> tio.Compose:
    """The same steps as TorchIO's defaults build them: each copies, ``RemapLabels`` remaps."""
    steps = []
    for step in copy.deepcopy(transform).transforms:
        if isinstance(step, LookupRemapLabels):
            step = tio.RemapLabels(step.remapping, include=step.include)
        step.copy = True
        steps.append(step)
    return tio.Compose(steps)


def prepare_all(
    dataset: tio.SubjectsDataset, seed: int
) -> tuple[list[float], list[tio.Subject], torch.Tensor]:
    """Seconds per subject, the prepared subjects and the next random draw, one pass from
    ``seed``."""
    torch.manual_seed(seed)
    seconds, subjects = [], []
    for index in range(len(dataset)):
        start = time.perf_counter()
        subjects.append(dataset[index])
        seconds.append(time.perf_counter() - start)
    return seconds, subjects, torch.rand(1)


def same(ours: Sequence[tio.Subject], theirs: Sequence[tio.Subject]) -> bool:
    """Whether two passes gave equal tensors, every image of every subject."""
    return all(
        torch.equal(image.data, b[name].data)
        for a, b in zip(ours, theirs, strict=True)
        for name, image in a.get_images_dict(intensity_only=False).items()
    )


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """One row per setting: the project's median per subject over the stock steps'.

    ``scratch`` is unused: nothing here trains or tracks.
    """
    table = []
    for setting, flags in SETTINGS.items():
        data = project_cli(options.profile, *flags).datamodule
        data.load("fit")
        ours = data.subjects_dataset("train", augment=True)
        stock = tio.SubjectsDataset(
            list(ours.dry_iter()), stock_steps(data.transform(augment=True))
        )
        passes_seconds: dict[str, list[float]] = {"project": [], "stock": []}
        identical = True
        for round_index in range(options.rounds):
            order = [("project", ours), ("stock", stock)]
            passes = {}
            for name, dataset in order if round_index % 2 == 0 else reversed(order):
                seconds, *passes[name] = prepare_all(dataset, seed=round_index)
                passes_seconds[name].append(sum(seconds))
            (subjects, draw), (stock_subjects, stock_draw) = passes["project"], passes["stock"]
            identical &= same(subjects, stock_subjects) and torch.equal(draw, stock_draw)
        # A pass, not a subject, is the unit: the affine applies to half the subjects,
        # so single subjects' times are bimodal and their median is no fair summary.
        ratio = statistics.median(
            project / stock
            for project, stock in zip(
                passes_seconds["project"], passes_seconds["stock"], strict=True
            )
        )
        project, peer = (
            statistics.median(passes_seconds[name]) / len(ours) for name in ("project", "stock")
        )
        table.append(
            Row(
                f"subject preparation, {setting}: project / TorchIO's stock steps",
                "(informs)",
                f"{ratio:.2f}x",
                None,
                f"{project * 1e3:.1f} against {peer * 1e3:.1f} ms a subject (median pass over "
                f"{len(ours)} training subjects, {options.rounds} passes each in turns, the "
                f"ratio the median of paired passes); same tensors and random draws: "
                f"{'yes' if identical else 'NO'}; {options.profile} profile",
                ratio,
            )
        )
    return table


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="sizes (default quick; smoke with --tiny)")
    parser.add_argument("--rounds", type=int, help="passes over the subjects a side (default 8)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "rounds": 8},
        tiny={"profile": "smoke", "rounds": 2},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
