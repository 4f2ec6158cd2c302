"""A configurable U-Net (Ronneberger et al., MICCAI 2015) for 2D or 3D inputs.

Plain ``torch.nn``: no Lightning here, so the network can be reused, benchmarked
and exported on its own.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from lightning_modules.networks.feature_layers import FeatureLayer

Norm = Literal["batch", "instance", "none"]

# Layer classes by spatial_dims, shared by every network family in this package.
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED_CONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_DROPOUT = {2: nn.Dropout2d, 3: nn.Dropout3d}
_NORM = {
    ("batch", 2): nn.BatchNorm2d,
    ("batch", 3): nn.BatchNorm3d,
    ("instance", 2): nn.InstanceNorm2d,
    ("instance", 3): nn.InstanceNorm3d,
}


def check_options(
    *,
    spatial_dims: int,
    depth: int,
    norm: str,
    dropout: float,
    base_channels: int,
    min_depth: int = 1,
) -> None:
    """Raise a ValueError naming the first constructor option that is out of range.

    The options every network family here shares; each family checks its own extras.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if depth < min_depth:
        raise ValueError(f"depth must be at least {min_depth}, got {depth!r}")
    if norm not in ("batch", "instance", "none"):
        raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {norm!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if base_channels < 1:
        raise ValueError(f"base_channels must be at least 1, got {base_channels!r}")


def norm_layer(norm: Norm, spatial_dims: int, channels: int) -> nn.Module:
    """The normalisation layer named by ``norm`` (``none`` gives an identity)."""
    if norm == "none":
        return nn.Identity()
    # Instance norm without affine parameters would drop the learnable scale.
    kwargs = {"affine": True} if norm == "instance" else {}
    return _NORM[(norm, spatial_dims)](channels, **kwargs)


class ConvBlock(nn.Sequential):
    """Two 3x3(x3) conv - norm - ReLU layers, with optional dropout in between."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        norm: Norm = "batch",
        dropout: float = 0.0,
    ) -> None:
        conv = CONV[spatial_dims]
        # Bias is redundant before a normalisation layer that re-centres.
        bias = norm == "none"
        layers: list[nn.Module] = [
            conv(in_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, spatial_dims, out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(_DROPOUT[spatial_dims](dropout))
        layers += [
            conv(out_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, spatial_dims, out_channels),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net with long concatenation skips between encoder and decoder levels.

    Inputs of any spatial size work: where pooling rounded an odd size down,
    the up-sampled map is zero-padded back to its skip's size.

    Args:
        spatial_dims: 2 for slices, 3 for volumes.
        in_channels: input image channels (one per MRI contrast).
        out_channels: number of classes, background included.
        depth: number of resolution levels (the bottleneck included).
        base_channels: feature maps at the first level; doubled per level.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout rate inside the bottleneck block.

    Example:
        >>> net = UNet(spatial_dims=2, in_channels=2, out_channels=5)
        >>> net(torch.zeros(1, 2, 64, 64)).shape
        torch.Size([1, 5, 64, 64])
    """

    # Subclasses without the long skips (the FCN baseline) set this to False.
    long_skips: ClassVar[bool] = True

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        base_channels: int = 16,
        norm: Norm = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_options(
            spatial_dims=spatial_dims,
            depth=depth,
            norm=norm,
            dropout=dropout,
            base_channels=base_channels,
        )
        self.spatial_dims = spatial_dims
        widths = [base_channels * 2**level for level in range(depth)]

        self.encoders = nn.ModuleList()
        channels = in_channels
        for level, width in enumerate(widths):
            is_bottleneck = level == depth - 1
            self.encoders.append(
                ConvBlock(
                    spatial_dims,
                    channels,
                    width,
                    norm=norm,
                    dropout=dropout if is_bottleneck else 0.0,
                )
            )
            channels = width
        self.pool = MAX_POOL[spatial_dims](2)

        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsamplers.append(TRANSPOSED_CONV[spatial_dims](channels, width, 2, stride=2))
            decoder_inputs = 2 * width if self.long_skips else width
            self.decoders.append(ConvBlock(spatial_dims, decoder_inputs, width, norm=norm))
            channels = width
        self.head = CONV[spatial_dims](channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to logits ``(B, out_channels, *spatial)``."""
        check_spatial_size(x, len(self.encoders))
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for upsample, decoder in zip(self.upsamplers, self.decoders, strict=True):
            skip = skips.pop()
            x = upsample(x)
            if x.shape[2:] != skip.shape[2:]:
                # Odd sizes were rounded down by pooling; pad back to the skip's size.
                x = pad_to(x, skip.shape[2:])
            x = decoder(torch.cat([skip, x], dim=1) if self.long_skips else x)
        return self.head(x)

    def feature_layers(self) -> dict[str, FeatureLayer]:
        """Hook points by resolution level (0 = full): encoders, skips, decoders.

        ``encoder_<level>`` is each encoder block's output (the deepest is the
        bottleneck), ``decoder_<level>`` each decoder block's. ``skip_<level>``
        (long skips only) is what the decoder block receives, ``concat(skip,
        up-sampled)``: the skip half alone would repeat ``encoder_<level>``, while
        the concatenation shows, by which channel indices carry the energy (the
        first half is the skip's), how much the decoder is fed by each path.
        """
        depth = len(self.encoders)
        layers = {
            f"encoder_{level}": FeatureLayer(block) for level, block in enumerate(self.encoders)
        }
        # Decoder blocks run deepest first: level depth - 2 down to 0.
        decoders = list(zip(range(depth - 2, -1, -1), self.decoders, strict=True))
        if self.long_skips:
            layers |= {
                f"skip_{level}": FeatureLayer(block, reads_input=True) for level, block in decoders
            }
        layers |= {f"decoder_{level}": FeatureLayer(block) for level, block in decoders}
        return layers


def pad_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Zero-pad the trailing spatial dims of ``x`` up to ``size`` (no copy when equal)."""
    if x.shape[2:] == size:
        return x
    padding: list[int] = []
    for have, want in zip(reversed(x.shape[2:]), reversed(size), strict=True):
        padding += [0, want - have]
    return nn.functional.pad(x, padding)


def check_spatial_size(x: torch.Tensor, depth: int) -> None:
    """Raise a ValueError when ``depth - 1`` halvings would shrink a spatial dim to zero."""
    smallest = 2 ** (depth - 1)
    if min(x.shape[2:]) < smallest:
        raise ValueError(
            f"input spatial size {tuple(x.shape[2:])} is too small for depth {depth}: "
            f"every spatial dim needs at least {smallest} voxels"
        )
