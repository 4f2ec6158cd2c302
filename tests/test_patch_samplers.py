"""The sliced patch cut gives TorchIO's patches and leaves torch's random stream as TorchIO does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from datamodules import patch_samplers

SHAPE = (20, 18, 12)
PATCH = (8, 6, 1)


def subject() -> tio.Subject:
    generator = torch.Generator().manual_seed(0)
    affine = np.array([[0.0, -1.2, 0, 30], [1.1, 0, 0, -4], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    label = torch.randint(0, 3, (1, *SHAPE), generator=generator)
    return tio.Subject(
        t1=tio.ScalarImage(tensor=torch.rand(1, *SHAPE, generator=generator), affine=affine),
        t2=tio.ScalarImage(tensor=torch.rand(1, *SHAPE, generator=generator), affine=affine),
        label=tio.LabelMap(tensor=label, affine=affine),
        sampling=tio.LabelMap(tensor=(label > 0).int(), affine=affine),
        subject="case_7",
    )


# TorchIO's sampler, the project's, and the arguments both take after the patch size.
PAIRS = {
    "label": (tio.LabelSampler, patch_samplers.LabelSampler, ("label", {0: 1, 2: 3})),
    "uniform": (tio.UniformSampler, patch_samplers.UniformSampler, ()),
    "weighted": (tio.WeightedSampler, patch_samplers.WeightedSampler, ("sampling",)),
}


def draw(sampler: tio.sampler.PatchSampler, seed: int) -> tuple[list[tio.Subject], torch.Tensor]:
    """Six patches after seeding torch, and the next three numbers of torch's stream."""
    torch.manual_seed(seed)
    patches = list(sampler(subject(), 6))
    return patches, torch.rand(3)


@pytest.mark.parametrize("kind", PAIRS)
def test_the_same_patches_and_random_stream_as_torchio(kind: str) -> None:
    theirs, ours, arguments = PAIRS[kind]
    expected, expected_next = draw(theirs(PATCH, *arguments), seed=3)
    got, got_next = draw(ours(PATCH, *arguments), seed=3)
    torch.testing.assert_close(got_next, expected_next, rtol=0, atol=0)
    assert len({tuple(p[tio.LOCATION].tolist()) for p in got}) > 1  # distinct positions drawn
    for mine, torchio_patch in zip(got, expected, strict=True):
        assert mine.keys() == torchio_patch.keys()
        assert mine[tio.LOCATION].tolist() == torchio_patch[tio.LOCATION].tolist()
        assert mine["subject"] == "case_7"
        for name in ("t1", "t2", "label", "sampling"):
            assert type(mine[name]) is type(torchio_patch[name])
            assert mine[name].spatial_shape == PATCH
            torch.testing.assert_close(mine[name].data, torchio_patch[name].data, rtol=0, atol=0)
            np.testing.assert_allclose(mine[name].affine, torchio_patch[name].affine)


def test_a_patch_is_a_copy_not_a_view_of_the_volume() -> None:
    volume = subject()
    torch.manual_seed(0)
    (patch,) = list(patch_samplers.UniformSampler(PATCH)(volume, 1))
    before = volume["t1"].data.clone()
    patch["t1"].data.fill_(-1)
    torch.testing.assert_close(volume["t1"].data, before)
