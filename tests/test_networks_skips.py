"""Tests for the skip-connection thread's networks (fcn, unet, frrn, hybrid) and
lightning_modules.networks.model_complexity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from lightning_modules.networks import (
    FCN,
    FRRN,
    NETWORKS,
    HybridNet,
    UNet,
    build_network,
    model_complexity,
)
from lightning_modules.networks.frrn import FRRU, default_units_per_stage

NAMES = ("fcn", "unet", "frrn", "hybrid")
TWO_STREAM = ("frrn", "hybrid")
BASE = 4  # narrow networks keep the tests fast; the shape contract does not depend on width
# Odd and even patch sizes the sampler can produce, 2D slices and 3D patches.
SIZES = [(33, 47), (64, 64), (17, 23, 9), (32, 32, 16)]
# The four networks' default parameter counts lie within this factor of the U-Net's.
PARAMETER_FACTOR = 1.5


def size_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def build(name: str, spatial_dims: int, **options: object) -> nn.Module:
    kwargs = {"in_channels": 2, "out_channels": 3, "base_channels": BASE, **options}
    return build_network(name, spatial_dims=spatial_dims, **kwargs)


def first_conv(network: nn.Module) -> nn.modules.conv._ConvNd:
    return next(m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: spinning worker threads slow small convolutions on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registry_holds_the_four_variants() -> None:
    expected = {"fcn": FCN, "unet": UNet, "frrn": FRRN, "hybrid": HybridNet}
    assert {name: NETWORKS[name] for name in NAMES} == expected
    for name, network_class in expected.items():
        assert type(build(name, 2)) is network_class


@pytest.mark.parametrize("spatial", SIZES, ids=size_id)
@pytest.mark.parametrize("name", NAMES)
def test_output_shape_matches_input_spatial_shape(name: str, spatial: tuple[int, ...]) -> None:
    network = build(name, len(spatial))
    y = network(torch.randn(2, 2, *spatial))
    assert y.shape == (2, 3, *spatial)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("spatial", [(33, 47), (19, 18, 16)], ids=size_id)
@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("name", ["fcn", "frrn", "hybrid"])
def test_output_shape_at_other_depths(name: str, depth: int, spatial: tuple[int, ...]) -> None:
    network = build(name, len(spatial), depth=depth, norm="none")
    with torch.no_grad():
        y = network(torch.randn(1, 2, *spatial))
    assert y.shape == (1, 3, *spatial)


@pytest.mark.parametrize("name", ["fcn", "frrn", "hybrid"])
def test_input_too_small_for_the_depth_raises(name: str) -> None:
    network = build(name, 3, depth=4)  # needs 2 ** 3 = 8 voxels per dim
    with pytest.raises(ValueError, match="too small for depth 4"):
        network(torch.randn(1, 2, 17, 23, 7))


@pytest.mark.parametrize("spatial", [(33, 47), (17, 23, 9), (32, 32, 16)], ids=size_id)
@pytest.mark.parametrize("name", TWO_STREAM)
def test_residual_stream_stays_at_full_resolution(name: str, spatial: tuple[int, ...]) -> None:
    network = build(name, len(spatial), residual_channels=5)
    stream_shapes: list[torch.Size] = []
    network.residual_stream.register_forward_hook(
        lambda module, inputs, output: stream_shapes.append(output.shape)
    )
    unit_records: list[tuple[int, torch.Size, torch.Size, bool]] = []

    def record_unit(unit: nn.Module, inputs: tuple, output: tuple) -> None:
        (_, residual_in), (pooling_out, residual_out) = inputs, output
        changed = not torch.equal(residual_in, residual_out)
        unit_records.append((unit.scale, pooling_out.shape, residual_out.shape, changed))

    units = [m for m in network.modules() if isinstance(m, FRRU)]
    for unit in units:
        unit.register_forward_hook(record_unit)
    with torch.no_grad():
        network(torch.randn(2, 2, *spatial))

    # the split, then one state after every unit, all at full resolution
    assert len(units) == sum(network.units_per_stage) == 13  # FRRN-A: 3, 4, 2 down; 2, 2 up
    assert len(stream_shapes) == 1 + len(units)
    assert all(shape == (2, 5, *spatial) for shape in stream_shapes)
    assert len(unit_records) == len(units)
    for scale, pooling_shape, residual_shape, changed in unit_records:
        assert residual_shape == (2, 5, *spatial)
        # the pooling stream runs at 1/scale, floored like repeated 2x pooling
        assert pooling_shape[2:] == tuple(size // scale for size in spatial)
        assert changed  # every unit adds its update into the stream
    assert sorted({record[0] for record in unit_records}) == [2, 4, 8]


@pytest.mark.parametrize("name", TWO_STREAM)
def test_units_per_stage_follow_frrn_a_or_the_option(name: str) -> None:
    assert default_units_per_stage(5) == (3, 4, 2, 2, 2, 2, 2)  # FRRN-A
    assert default_units_per_stage(4) == (3, 4, 2, 2, 2)
    assert default_units_per_stage(2) == (3,)
    network = build(name, 2, depth=3, units_per_stage=[1, 2, 3])
    assert [len(stage) for stage in network.encoder] == [1, 2]
    assert [len(stage) for stage in network.decoder] == [3]
    assert [unit.scale for unit in network.decoder[0]] == [2, 2, 2]


def parameter_shapes(network: nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in network.state_dict().items()}


def test_hybrid_is_frrn_plus_long_concatenation_skips() -> None:
    frrn = parameter_shapes(build("frrn", 2, depth=4, residual_channels=3))
    hybrid = parameter_shapes(build("hybrid", 2, depth=4, residual_channels=3))
    assert frrn.keys() == hybrid.keys()
    differing = {key for key in frrn if frrn[key] != hybrid[key]}
    # decoder stage 0 runs at 1/4 (width 16), stage 1 at 1/2 (width 8); the merge at full res
    assert differing == {
        "decoder.0.0.block.0.weight",
        "decoder.1.0.block.0.weight",
        "merge.0.weight",
    }
    assert hybrid["decoder.0.0.block.0.weight"][1] == frrn["decoder.0.0.block.0.weight"][1] + 16
    assert hybrid["decoder.1.0.block.0.weight"][1] == frrn["decoder.1.0.block.0.weight"][1] + 8
    assert hybrid["merge.0.weight"][1] == frrn["merge.0.weight"][1] + BASE  # the stem's skip


def test_fcn_is_unet_without_skips() -> None:
    unet = parameter_shapes(build("unet", 3, depth=4))
    fcn = parameter_shapes(build("fcn", 3, depth=4))
    assert unet.keys() == fcn.keys()
    differing = {key for key in unet if unet[key] != fcn[key]}
    assert differing == {f"decoders.{index}.0.weight" for index in range(3)}
    for index in range(3):
        key = f"decoders.{index}.0.weight"
        width = unet[key][0]
        assert (unet[key][1], fcn[key][1]) == (2 * width, width)  # the skip's half is gone


@pytest.mark.parametrize(("spatial_dims", "spatial"), [(2, (17, 16)), (3, (9, 8, 11))])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_the_first_conv(
    name: str, spatial_dims: int, spatial: tuple[int, ...]
) -> None:
    network = build(name, spatial_dims, depth=3)
    logits = network(torch.randn(2, 2, *spatial))
    target = torch.randint(0, 3, (2, *spatial))
    nn.functional.cross_entropy(logits, target).backward()
    conv = first_conv(network)
    assert conv.in_channels == 2  # really the layer that sees the image
    assert conv.weight.grad is not None
    assert torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in network.parameters())


NORM_TYPES = {
    ("instance", 2): nn.InstanceNorm2d,
    ("instance", 3): nn.InstanceNorm3d,
    ("batch", 3): nn.BatchNorm3d,
}


@pytest.mark.parametrize(("norm", "spatial_dims"), [("instance", 2), ("batch", 3), ("none", 3)])
@pytest.mark.parametrize("name", ["fcn", "frrn", "hybrid"])
def test_norm_options(name: str, norm: str, spatial_dims: int) -> None:
    network = build(name, spatial_dims, depth=2, norm=norm)
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    convs = [m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if norm == "none":
        assert norms == []
        assert all(conv.bias is not None for conv in convs)
    else:
        assert len(norms) >= 4
        assert all(type(m) is NORM_TYPES[(norm, spatial_dims)] for m in norms)
    y = network(torch.randn(2, 2, *([6] * spatial_dims)))
    assert y.shape == (2, 3, *([6] * spatial_dims))


@pytest.mark.parametrize("name", ["fcn", "frrn", "hybrid"])
def test_dropout_sits_in_the_deepest_stage_only(name: str) -> None:
    network = build(name, 2, depth=3, dropout=0.25)
    dropouts = [m for m in network.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    deepest = network.encoders[-1] if name == "fcn" else network.encoder[-1]
    in_deepest = [m for m in deepest.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    assert dropouts == in_deepest
    assert len(dropouts) == (1 if name == "fcn" else 4)  # FRRN-A: 4 units at 1/4
    assert all(m.p == 0.25 for m in dropouts)
    assert not any(
        isinstance(m, nn.modules.dropout._DropoutNd) for m in build(name, 2, depth=3).modules()
    )


BAD_OPTIONS = [
    ({"spatial_dims": 1}, "spatial_dims"),
    ({"spatial_dims": 4}, "spatial_dims"),
    ({"depth": 0}, "depth"),
    ({"norm": "group"}, "norm"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.5}, "dropout"),
    ({"base_channels": 0}, "base_channels"),
    ({"widths": [4, 8]}, "widths"),
]
TWO_STREAM_BAD_OPTIONS = [
    ({"depth": 1}, "depth must be at least 2"),
    ({"residual_channels": 0}, "residual_channels"),
    ({"depth": 4, "units_per_stage": [3, 4, 2]}, "units_per_stage"),
    ({"depth": 4, "units_per_stage": [3, 4, 0, 2, 2]}, "units_per_stage"),
    ({"depth": 2, "units_per_stage": [3, 2]}, "units_per_stage"),
]
CASES = [
    *[
        (name, options, message)
        for name in ("fcn", *TWO_STREAM)
        for options, message in BAD_OPTIONS
    ],
    *[
        (name, options, message)
        for name in TWO_STREAM
        for options, message in TWO_STREAM_BAD_OPTIONS
    ],
    ("fcn", {"units_per_stage": [1]}, "units_per_stage"),
    ("fcn", {"residual_channels": 4}, "residual_channels"),
]


@pytest.mark.parametrize(("name", "options", "message"), CASES)
def test_bad_options_raise_value_error(name: str, options: dict[str, object], message: str) -> None:
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, **options}
    with pytest.raises(ValueError, match=message):
        build_network(name, **kwargs)


class _Twice(nn.Module):
    """One conv called twice: its MACs count twice, its parameters once."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def _tiny_2d() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),  # 57 parameters
        nn.ReLU(),
        nn.Conv2d(3, 4, 1, bias=False),  # 12 parameters
        nn.Flatten(),
        nn.Linear(4 * 5 * 6, 7),  # 847 parameters
    )


def _tiny_3d() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(4, 6, 3, padding=1, groups=2),  # 6 * 2 * 27 + 6 = 330 parameters
        nn.BatchNorm3d(6),  # 12 parameters, no MACs counted
        nn.ConvTranspose3d(6, 2, 2, stride=2),  # 6 * 2 * 8 + 2 = 98 parameters
    )


@pytest.mark.parametrize(
    ("make", "shape", "parameters", "macs"),
    [
        # 3x3 conv: 3 * 5 * 6 outputs x 2 * 9 taps = 1620; 1x1 conv: 4 * 30 x 3 = 360;
        # linear: 7 outputs x 120 inputs = 840
        (_tiny_2d, (1, 2, 5, 6), 916, 1620 + 360 + 840),
        (_tiny_2d, (2, 2, 5, 6), 916, 2 * (1620 + 360 + 840)),
        # grouped conv: 6 * 60 outputs x (4 / 2) * 27 taps = 19440;
        # transposed conv: 6 * 60 inputs x 2 outputs x 8 taps = 5760
        (_tiny_3d, (1, 4, 3, 4, 5), 440, 19440 + 5760),
        # 3 * 16 outputs x 3 inputs, twice
        (_Twice, (1, 3, 4, 4), 12, 2 * 144),
    ],
)
def test_model_complexity_counts_by_hand(
    make: type[nn.Module], shape: tuple[int, ...], parameters: int, macs: int
) -> None:
    assert model_complexity(make(), shape) == {"parameters": parameters, "macs": macs}


def test_model_complexity_restores_modes_and_removes_hooks() -> None:
    network = _tiny_3d()
    network.train()
    network[1].eval()
    running_mean = network[1].running_mean.clone()
    model_complexity(network, (1, 4, 3, 4, 5))
    assert [m.training for m in network] == [True, False, True]
    assert all(not m._forward_hooks for m in network.modules())
    torch.testing.assert_close(network[1].running_mean, running_mean, atol=0, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_macs_grow_with_the_number_of_voxels(name: str) -> None:
    network = build(name, 2)
    small = model_complexity(network, (1, 2, 32, 32))
    large = model_complexity(network, (1, 2, 64, 64))
    assert (
        small["parameters"] == large["parameters"] == sum(p.numel() for p in network.parameters())
    )
    assert large["macs"] == 4 * small["macs"] > 0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_default_parameter_counts_are_comparable(spatial_dims: int) -> None:
    counts = {
        name: sum(
            p.numel()
            for p in build_network(
                name, spatial_dims=spatial_dims, in_channels=2, out_channels=5
            ).parameters()
        )
        for name in NAMES
    }
    reference = counts["unet"]
    for count in counts.values():
        assert reference / PARAMETER_FACTOR <= count <= reference * PARAMETER_FACTOR, counts
    assert len(set(counts.values())) == len(NAMES)  # four different networks
