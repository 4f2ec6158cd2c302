"""Network registry: config names map to network classes here, in one place.

The skip-connection thread's four variants are registered: ``fcn`` (no skips),
``unet`` (long concatenation skips), ``frrn`` (full-resolution residual stream) and
``hybrid`` (both). Later threads register theirs (the pix2pix generator) by adding
one line to ``NETWORKS``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_modules.networks.complexity import model_complexity
from lightning_modules.networks.fcn import FCN
from lightning_modules.networks.frrn import FRRN
from lightning_modules.networks.hybrid import HybridNet
from lightning_modules.networks.unet import UNet

NETWORKS: dict[str, type[nn.Module]] = {
    "fcn": FCN,
    "unet": UNet,
    "frrn": FRRN,
    "hybrid": HybridNet,
}


def build_network(
    name: str,
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    **options: Any,
) -> nn.Module:
    """Build the network registered as ``name``.

    Args:
        name: a key of ``NETWORKS``.
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: classes, background included.
        **options: the network's own keyword arguments (depth, widths, ...).

    Raises:
        ValueError: for an unknown name or an option the network does not take.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known networks: {sorted(NETWORKS)}")
    network_class = NETWORKS[name]
    try:
        return network_class(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            **options,
        )
    except TypeError as error:
        raise ValueError(f"bad options for network {name!r} {options}: {error}") from error


__all__ = ["FCN", "FRRN", "NETWORKS", "HybridNet", "UNet", "build_network", "model_complexity"]
