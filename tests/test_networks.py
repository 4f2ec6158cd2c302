"""Tests for lightning_modules.networks: the registry and the U-Net's shape contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from lightning_modules.networks import NETWORKS, UNet, build_network

BASE = 4  # narrow networks keep the tests fast; the shape contract does not depend on width


def unet(spatial_dims: int, **options: object) -> nn.Module:
    kwargs = {"in_channels": 2, "out_channels": 3, "base_channels": BASE, **options}
    return build_network("unet", spatial_dims=spatial_dims, **kwargs)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, spinning worker threads make the
    convolutions here about ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "spatial",
    [(64, 64), (33, 47), (32, 32, 16), (17, 23, 9)],
    ids=lambda shape: "x".join(map(str, shape)),
)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_output_shape_matches_input_spatial_shape(spatial: tuple[int, ...], depth: int) -> None:
    network = unet(len(spatial), depth=depth, norm="none")
    x = torch.randn(2, 2, *spatial)
    with torch.no_grad():
        y = network(x)
    assert y.shape == (2, 3, *spatial)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    ("spatial_dims", "in_channels", "out_channels", "shape"),
    [
        (2, 1, 2, (1, 1, 16, 16)),
        (2, 4, 7, (3, 4, 12, 10)),
        (3, 1, 5, (1, 1, 8, 8, 8)),
        (3, 3, 2, (2, 3, 9, 6, 5)),
    ],
)
def test_channels_follow_the_arguments(
    spatial_dims: int, in_channels: int, out_channels: int, shape: tuple[int, ...]
) -> None:
    network = build_network(
        "unet",
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        depth=2,
        base_channels=BASE,
    )
    with torch.no_grad():
        y = network(torch.randn(*shape))
    assert y.shape == (shape[0], out_channels, *shape[2:])


def test_build_network_returns_the_registered_class() -> None:
    assert NETWORKS["unet"] is UNet
    network = unet(2, depth=3)
    assert isinstance(network, UNet)
    assert len(network.encoders) == 3
    assert len(network.decoders) == 2
    first_conv = network.encoders[0][0]
    assert first_conv.in_channels == 2
    assert first_conv.out_channels == BASE
    assert network.encoders[-1][0].out_channels == BASE * 4  # doubled per level
    assert network.head.out_channels == 3


NORM_TYPES = {
    ("batch", 2): nn.BatchNorm2d,
    ("batch", 3): nn.BatchNorm3d,
    ("instance", 2): nn.InstanceNorm2d,
    ("instance", 3): nn.InstanceNorm3d,
}


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize(("spatial_dims", "spatial"), [(2, (20, 18)), (3, (12, 10, 8))])
def test_norm_options(norm: str, spatial_dims: int, spatial: tuple[int, ...]) -> None:
    network = unet(spatial_dims, depth=3, norm=norm)
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    convs = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if norm == "none":
        assert norms == []
        # without a re-centring norm, every conv keeps its bias
        assert all(conv.bias is not None for conv in convs)
    else:
        expected = NORM_TYPES[(norm, spatial_dims)]
        # two per conv block: 3 encoder blocks + 2 decoder blocks
        assert len(norms) == 10
        assert all(type(m) is expected for m in norms)
        assert all(m.affine for m in norms)
    network.train()
    y = network(torch.randn(2, 2, *spatial))
    assert y.shape == (2, 3, *spatial)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dropout_sits_in_the_bottleneck_and_is_stochastic_in_training(spatial_dims: int) -> None:
    network = unet(spatial_dims, depth=3, dropout=0.5, norm="none")
    dropouts = [m for m in network.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    assert len(dropouts) == 1
    assert dropouts[0].p == 0.5
    assert any(m is dropouts[0] for m in network.encoders[-1].modules())
    assert type(dropouts[0]) is (nn.Dropout2d if spatial_dims == 2 else nn.Dropout3d)

    x = torch.randn(2, 2, *([8] * spatial_dims))
    with torch.no_grad():
        network.train()
        assert not torch.equal(network(x), network(x))
        network.eval()
        torch.testing.assert_close(network(x), network(x), atol=0, rtol=0)


def test_no_dropout_by_default() -> None:
    network = unet(2, depth=3)
    assert not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in network.modules())


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet", {}, "resnet"),
        ("UNet", {}, "UNet"),
        ("unet", {"widths": [4, 8]}, "widths"),
        ("unet", {"activation": "relu"}, "activation"),
        ("unet", {"spatial_dims": 4}, "spatial_dims"),
        ("unet", {"spatial_dims": 1}, "spatial_dims"),
        ("unet", {"depth": 0}, "depth"),
        ("unet", {"depth": -1}, "depth"),
        ("unet", {"norm": "group"}, "norm"),
        ("unet", {"norm": "Batch"}, "norm"),
        ("unet", {"dropout": 1.0}, "dropout"),
        ("unet", {"dropout": -0.1}, "dropout"),
    ],
)
def test_bad_names_and_options_raise_value_error(
    name: str, options: dict[str, object], message: str
) -> None:
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, **options}
    with pytest.raises(ValueError, match=message):
        build_network(name, **kwargs)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize(("spatial_dims", "spatial"), [(2, (17, 16)), (3, (9, 8, 7))])
def test_gradient_reaches_the_first_conv(
    norm: str, spatial_dims: int, spatial: tuple[int, ...]
) -> None:
    network = unet(spatial_dims, depth=3, norm=norm)
    logits = network(torch.randn(2, 2, *spatial))
    target = torch.randint(0, 3, (2, *spatial))
    nn.functional.cross_entropy(logits, target).backward()
    first_conv = network.encoders[0][0]
    assert first_conv.weight.grad is not None
    assert torch.isfinite(first_conv.weight.grad).all()
    assert first_conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in network.parameters())
