"""The picture of a translation: source | generated | real | difference, one slice.

Logged every validation epoch by ``Pix2PixModule`` (and at test), so the MLflow run shows
how the generated image approaches the real one over training.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure


def head_slice(mask: torch.Tensor) -> int:
    """The axial slice (last axis) with the most head voxels."""
    return int(mask.flatten(0, -2).sum(0).argmax())


def translation_figure(
    *,
    subject: str,
    source: torch.Tensor,
    generated: torch.Tensor,
    real: torch.Tensor,
    slice_index: int,
    title: str = "",
) -> Figure:
    """Four panels of axial slice ``slice_index`` of ``(H, W, D)`` volumes.

    Generated and real share one grey scale (the real image's 1st-99th percentiles), so
    brightness differences are real; the difference panel is generated - real on a
    symmetric blue-red scale.
    """

    def view(volume: torch.Tensor) -> np.ndarray:
        # Arrays are (x, y, z) in RAS+; transpose and flip so anterior is up.
        return np.flipud(volume[:, :, slice_index].float().cpu().numpy().T)

    real_view = view(real)
    low, high = np.percentile(real_view, [1, 99])
    difference = view(generated) - real_view
    limit = float(np.abs(difference).max()) or 1.0
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    axes = figure.subplots(1, 4)
    panels = [
        ("source", view(source), {"cmap": "gray"}),
        ("generated", view(generated), {"cmap": "gray", "vmin": low, "vmax": high}),
        ("real", real_view, {"cmap": "gray", "vmin": low, "vmax": high}),
        ("generated - real", difference, {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}),
    ]
    for axis, (name, image, style) in zip(axes, panels, strict=True):
        shown = axis.imshow(image, **style)
        axis.set_title(name)
        axis.axis("off")
    figure.colorbar(shown, ax=axes[-1], shrink=0.8)
    figure.suptitle(f"{subject}: axial slice {slice_index}" + (f", {title}" if title else ""))
    return figure
