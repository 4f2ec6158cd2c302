"""Whole-slice inference in 2D: the logits of MONAI's SliceInferer, in batches of slices."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.inferers import SliceInferer

from lightning_modules.inference import (
    class_indices,
    folded_for_inference,
    predict_slices,
    predict_volume,
)
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


def trained_looking(spatial_dims: int) -> torch.nn.Module:
    """A U-Net in eval mode whose batch norms have running statistics far from 0 and 1."""
    torch.manual_seed(1)
    net = build_network("unet", spatial_dims=spatial_dims, in_channels=2, out_channels=3, depth=2)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-2, 2)
            module.running_var.uniform_(0.2, 5)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)
    return net.eval()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_folded_norms_give_the_same_logits_and_leave_the_network_alone(spatial_dims):
    network = trained_looking(spatial_dims)
    folded = folded_for_inference(network)
    norms = (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    assert not any(isinstance(m, norms) for m in folded.modules())
    assert sum(isinstance(m, norms) for m in network.modules()) == 6  # untouched: 3 blocks
    image = torch.randn(2, 2, 16, 16, 8) if spatial_dims == 3 else torch.randn(4, 2, 16, 16)
    without_norms = copy.deepcopy(network)
    for sequence in without_norms.modules():
        if isinstance(sequence, torch.nn.Sequential):
            for index, module in enumerate(sequence):
                if isinstance(module, norms):
                    sequence[index] = torch.nn.Identity()
    with torch.no_grad():
        expected, found = network(image), folded(image)
        assert (expected - without_norms(image)).abs().max() > 0.1  # the norms matter
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-5)


def test_a_network_in_training_mode_is_not_folded():
    network = trained_looking(2).train()
    assert folded_for_inference(network) is network


@pytest.mark.parametrize("shape", [(5, 6, 7, 4), (3, 9), (2, 1)])
def test_class_indices_equal_argmax_ties_and_nan_included(shape: tuple[int, ...]) -> None:
    """The first class of highest logit, as ``argmax(0)`` picks it, also on ties and NaN."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, shape, generator=generator).float()  # many ties
    logits.view(-1)[:: max(1, logits.numel() // 5)] = float("nan")
    assert torch.equal(class_indices(logits), logits.argmax(0))
    contiguous_last = torch.randn(shape[::-1], generator=generator).movedim(-1, 0)
    assert torch.equal(class_indices(contiguous_last), contiguous_last.argmax(0))
