"""Tests for datamodules.transforms: the label remap and steps that work on one copy."""

from __future__ import annotations

import copy

import pytest
import torch
import torchio as tio

from datamodules.transforms import LookupRemapLabels, subject_transform

CHANNELS = ("t1", "t2")


def label_volume(values: list[int], seed: int = 0) -> torch.Tensor:
    """A (1, 24, 20, 16) label map of `values`, drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    choice = torch.randint(len(values), (1, 24, 20, 16), generator=generator)
    return torch.tensor(values)[choice]


@pytest.mark.parametrize(
    ("values", "remapping"),
    [
        ([0, 2, 5, 7], {2: 1, 5: 2, 7: 3}),  # a class map to consecutive indices
        ([0, 1, 2, 3], {1: 2, 2: 1}),  # a swap: each voxel remapped once, from its old value
        ([0, 3, 9], {3: 1}),  # 9 is not in the mapping: it stays
        ([0, 1], {4: 1}),  # nothing to remap
        ([0, 6], {6: 0, 0: 6}),
        ([0, 1, 2], {}),  # an empty mapping changes nothing
    ],
)
@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float32]
)
def test_lookup_remap_equals_torchio(
    values: list[int], remapping: dict[int, int], dtype: torch.dtype
) -> None:
    tensor = label_volume(values).to(dtype)
    ours = LookupRemapLabels(remapping)(tio.LabelMap(tensor=tensor.clone())).data
    theirs = tio.RemapLabels(remapping)(tio.LabelMap(tensor=tensor.clone())).data
    assert ours.dtype == theirs.dtype == dtype
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.float32])
def test_lookup_remap_of_negative_values_equals_torchio(dtype: torch.dtype) -> None:
    """Negative values cannot index a table: TorchIO's own path remaps them."""
    tensor = label_volume([-1, 0, 2]).to(dtype)
    ours = LookupRemapLabels({2: 1, -1: 3})(tio.LabelMap(tensor=tensor.clone())).data
    theirs = tio.RemapLabels({2: 1, -1: 3})(tio.LabelMap(tensor=tensor.clone())).data
    assert torch.equal(ours, theirs)


def test_lookup_remap_refuses_a_mask() -> None:
    with pytest.raises(TypeError, match="masking_method"):
        LookupRemapLabels({1: 2}, masking_method="label")


def test_lookup_remap_replays_from_the_history() -> None:
    """TorchIO rebuilds applied steps from their recorded arguments (history, inverse)."""
    out = LookupRemapLabels({3: 1})(tio.Subject(label=tio.LabelMap(tensor=label_volume([0, 3]))))
    (replayed,) = out.get_applied_transforms()
    assert isinstance(replayed, LookupRemapLabels) and replayed.remapping == {3: 1}
    restored = out.apply_inverse_transform()
    assert torch.equal(restored["label"].data, label_volume([0, 3]))


def subject(seed: int = 0) -> tio.Subject:
    generator = torch.Generator().manual_seed(seed)
    images = {
        name: tio.ScalarImage(tensor=torch.rand((1, 24, 20, 16), generator=generator) + 1)
        for name in CHANNELS
    }
    label = label_volume([0, 3, 8], seed)
    return tio.Subject(label=tio.LabelMap(tensor=label), **images)


@pytest.mark.parametrize("preset", ["none", "light", "mri"])
def test_the_transform_leaves_its_input_alone(preset: str) -> None:
    """Its steps work in place on the one copy the composition makes, not on the input."""
    original = subject()
    before = copy.deepcopy(original)
    transform = subject_transform({3: 1, 8: 2}, channels=CHANNELS, preset=preset)
    torch.manual_seed(0)
    for _ in range(4):  # random steps apply in some of the draws
        out = transform(original)
        assert set(torch.unique(out["label"].data).tolist()) <= {0, 1, 2}
    for name in (*CHANNELS, "label"):
        assert torch.equal(original[name].data, before[name].data), name


@pytest.mark.parametrize("preset", ["light", "mri"])
def test_in_place_steps_give_what_copying_steps_give(preset: str) -> None:
    """The same draws and the same volumes as TorchIO's steps that each copy the subject."""
    transform = subject_transform({3: 1, 8: 2}, channels=CHANNELS, preset=preset)
    for step in transform.transforms:
        step.probability = 1.0  # every step applies, in every draw
    copying = copy.deepcopy(transform)
    for step in copying.transforms:
        step.copy = True
    results = []
    for candidate in (transform, copying):
        torch.manual_seed(3)
        results.append([candidate(subject(seed)) for seed in range(6)])
        results[-1].append(torch.rand(1))  # the random stream after them
    ours, theirs = results
    assert torch.equal(ours[-1], theirs[-1])
    for a, b in zip(ours[:-1], theirs[:-1], strict=True):
        for name in (*CHANNELS, "label"):
            assert torch.equal(a[name].data, b[name].data), name
