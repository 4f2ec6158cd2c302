"""Whole-slice inference in 2D: the logits of MONAI's SliceInferer, in batches of slices."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import SliceInferer

from lightning_modules.inference import class_indices, predict_slices, predict_volume
from lightning_modules.networks import build_network


@pytest.fixture
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("unet", spatial_dims=2, in_channels=2, out_channels=3, depth=2).eval()


def test_whole_slices_give_monai_slice_inferers_logits(network: torch.nn.Module) -> None:
    image = torch.randn(2, 32, 24, 7)  # (C, H, W, D): 7 slices in batches of 3
    ours = predict_volume(network, image, spatial_dims=2, batch_size=3)
    inferer = SliceInferer(roi_size=(32, 24), sw_batch_size=3, spatial_dim=2, mode="constant")
    with torch.no_grad():
        monai = inferer(image.unsqueeze(0), network)[0]
    assert ours.shape == (3, 32, 24, 7)
    torch.testing.assert_close(ours, monai, rtol=0, atol=1e-6)


def test_each_slice_is_its_own_image(network: torch.nn.Module) -> None:
    image = torch.randn(2, 16, 16, 5)
    logits = predict_slices(network, image, batch_size=2)
    with torch.no_grad():
        second = network(image[..., 1].unsqueeze(0))[0]
    torch.testing.assert_close(logits[..., 1], second, rtol=0, atol=1e-6)


def test_slices_go_in_batches_of_the_batch_size() -> None:
    shapes = []

    def record(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return x

    predict_volume(record, torch.zeros(2, 16, 12, 5), spatial_dims=2, batch_size=2)
    assert shapes == [(2, 2, 16, 12), (2, 2, 16, 12), (1, 2, 16, 12)]


@pytest.mark.parametrize("shape", [(5, 6, 7, 4), (3, 9), (2, 1)])
def test_class_indices_equal_argmax_ties_and_nan_included(shape: tuple[int, ...]) -> None:
    """The first class of highest logit, as ``argmax(0)`` picks it, also on ties and NaN."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, shape, generator=generator).float()  # many ties
    logits.view(-1)[:: max(1, logits.numel() // 5)] = float("nan")
    assert torch.equal(class_indices(logits), logits.argmax(0))
    contiguous_last = torch.randn(shape[::-1], generator=generator).movedim(-1, 0)
    assert torch.equal(class_indices(contiguous_last), contiguous_last.argmax(0))
