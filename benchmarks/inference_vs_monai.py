"""Whole-volume inference: the project's ``predict_volume`` against MONAI's inferers.

The baseline network (built as ``versaseg fit`` builds it, seeded, eval mode) segments
one preprocessed test volume of the phantom through ``SegmentationModule.segment``
(``lightning_modules.inference.predict_volume``: in 3D TorchIO's GridSampler and
GridAggregator, in 2D whole slices in batches), and the same network through MONAI:

- 2D: ``monai.inferers.SliceInferer`` over the last axis (``spatial_dim=2``), whole
  slices, the module's inference batch size, no overlap;
- 3D: ``monai.inferers.sliding_window_inference`` with patch ``INFERENCE_PATCH_3D`` and
  ``INFERENCE_OVERLAP_3D`` voxels of overlap, ``mode="constant"``: equal weights, the
  same average as TorchIO's ``overlap_mode="average"``. MONAI's overlap is a fraction
  per axis; it is chosen so that MONAI's windows start where TorchIO's do.

Calls take turns; times are medians. Goals: the same logits (max absolute difference
at most ``TOLERANCE``) and at most 1.0x MONAI's time.

Run: .venv/bin/python benchmarks/inference_vs_monai.py [--rounds 15] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from monai.inferers import SliceInferer, sliding_window_inference

from benchmarks.bench_common import (
    INFERENCE_OVERLAP_3D,
    INFERENCE_PATCH_3D,
    Row,
    as_fit_runs,
    interleaved,
    isolate_tracking,
    parse_options,
    print_rows,
    project_cli,
    quiet,
)
from experiments.fit import VersasegCLI
from lightning_modules.inference import inference_patch_size

TOLERANCE = 1e-4  # float32 logits of order 1; sums in another order differ by ~1e-6
TIME_GOAL = 1.0


def test_volume(cli: VersasegCLI) -> torch.Tensor:
    """The first test subject's image ``(C, H, W, D)``, preprocessed as validation does."""
    data = cli.datamodule
    data.load("test")
    return data.collate.volume([data.subjects_dataset("test")[0]])["image"][0]


def monai_overlap(patch: Sequence[int], overlap: int) -> list[float]:
    """MONAI overlap fractions whose windows start where ``predict_volume``'s do.

    ``predict_volume`` shares ``min(overlap, p - 1)`` voxels, rounded down to even,
    on every axis but a one-voxel one; TorchIO then steps ``p - o``. MONAI steps
    ``int(p * (1 - f))``: a quarter voxel less than ``o / p`` keeps float rounding
    from taking one voxel off that step.
    """
    voxels = [0 if p == 1 else min(overlap, p - 1) // 2 * 2 for p in patch]
    return [(o - 0.25) / p if o else 0.0 for o, p in zip(voxels, patch, strict=True)]


def monai_call(
    cli: VersasegCLI, image: torch.Tensor
) -> tuple[Callable[[], torch.Tensor], str, str]:
    """MONAI's inference of ``image`` by the module's network, and what it stands for."""
    module = cli.model
    patch = inference_patch_size(image.shape[1:], module.spatial_dims, module.inference_patch_size)
    batch = module.inference_batch_size
    inputs = image.unsqueeze(0)
    if module.spatial_dims == 2:
        inferer = SliceInferer(
            roi_size=patch[:2], sw_batch_size=batch, spatial_dim=2, overlap=0.0, mode="constant"
        )
        return lambda: inferer(inputs, module.network)[0], "SliceInferer", f"slices {patch[:2]}"
    overlap = monai_overlap(patch, module.inference_overlap)

    def sliding() -> torch.Tensor:
        return sliding_window_inference(
            inputs, patch, batch, module.network, overlap=overlap, mode="constant"
        )[0]

    where = f"patch {patch}, overlap {module.inference_overlap} voxels"
    return sliding, "sliding_window_inference", where


def timed(run: Callable[[], torch.Tensor]) -> Callable[[], list[float]]:
    """``run`` as a one-sample timing, under no_grad (``predict_volume`` runs under it too)."""

    def sample() -> list[float]:
        started = time.perf_counter()
        with torch.no_grad():
            run()
        return [time.perf_counter() - started]

    return sample


def compare(cli: VersasegCLI, rounds: int, profile: str) -> list[Row]:
    """The logits row and the time row of one network against its MONAI peer."""
    module = as_fit_runs(cli, cli.model.eval())  # MONAI runs this same network
    image = test_volume(cli)
    monai, peer, where = monai_call(cli, image)
    with torch.no_grad():  # also the warm-up of both
        difference = float((module.segment(image) - monai()).abs().max())
    seconds = interleaved(
        {"project": timed(lambda: module.segment(image)), "monai": timed(monai)}, rounds
    )
    project, reference = (statistics.median(seconds[k]) for k in ("project", "monai"))
    ratio = project / reference
    dims = f"{module.spatial_dims}D"
    shape = "x".join(str(s) for s in image.shape[1:])
    return [
        Row(
            f"inference {dims}: predict_volume logits against MONAI {peer}",
            f"max abs difference <= {TOLERANCE:g}",
            f"{difference:.1e}",
            difference <= TOLERANCE,
            f"{shape} test volume, {where}",
            difference,
        ),
        Row(
            f"inference {dims}: time, predict_volume / MONAI {peer}",
            f"<= {TIME_GOAL:.1f}x",
            f"{ratio:.2f}x",
            ratio <= TIME_GOAL,
            f"{project:.2f} s against {reference:.2f} s, median of {rounds}, "
            f"{profile} profile network",
            ratio,
        ),
    ]


def rows(options: argparse.Namespace, scratch: Path | None = None) -> list[Row]:
    """2D against SliceInferer, 3D against sliding_window_inference with overlap."""
    if scratch is None:
        isolate_tracking()
    two = project_cli(options.profile)
    three = project_cli(
        options.profile,
        "--model.init_args.inference_patch_size",
        str(list(INFERENCE_PATCH_3D)),
        "--model.init_args.inference_overlap",
        str(INFERENCE_OVERLAP_3D),
        spatial_dims=3,
    )
    rounds, profile = options.rounds, options.profile
    return [*compare(two, rounds, profile), *compare(three, rounds, profile)]


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` sets small defaults for a check that the script runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="config sizes (default quick; smoke with --tiny)")
    parser.add_argument("--rounds", type=int, help="timed calls of each, in turns (default 15)")
    return parse_options(
        parser,
        argv,
        full={"profile": "quick", "rounds": 15},
        tiny={"profile": "smoke", "rounds": 2},
    )


def main() -> None:
    quiet()
    print_rows(rows(options()))


if __name__ == "__main__":
    main()
