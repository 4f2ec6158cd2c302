"""Figures logged with runs."""

from __future__ import annotations

import numpy as np
import torch

from experiments.figures import most_informative_slice, prediction_figure


def test_most_informative_slice_prefers_more_classes_then_more_foreground():
    labels = np.zeros((6, 6, 4), dtype=int)
    labels[:, :, 0] = 1  # one class, much foreground
    labels[0, 0, 1], labels[1, 1, 1] = 1, 2  # two classes
    labels[0, 0, 2], labels[1, 1, 2], labels[2:4, 2:4, 2] = 1, 2, 2  # two classes, more voxels
    assert most_informative_slice(labels) == 2


def test_prediction_figure_writes_a_png(tmp_path):
    truth = torch.zeros(16, 16, 5, dtype=torch.long)
    truth[4:10, 4:10, 2] = 1
    figure = prediction_figure(
        subject="s1",
        image=torch.rand(16, 16, 5),
        truth=truth,
        prediction=truth.clone(),
        class_names=("background", "cerebrum"),
    )
    path = tmp_path / "figure.png"
    figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.texts[0].get_text() == "s1: axial slice 2"
