"""Full-resolution residual network (Pohlen et al., CVPR 2017) for 2D or 3D inputs.

Two streams run side by side. The *residual stream* stays at the input's full
resolution from the first layer to the last and carries fine detail; the
*pooling stream* goes down and back up in scale like an encoder-decoder and
carries context. Every full-resolution residual unit (FRRU) couples them::

    pooling stream y (scale 1/2^n)      residual stream z (full resolution)
        |                                   |
        |          +-- max-pool 2^n --------+
        v          v                        |
      concat(y, pooled z)                   |
        |                                   |
      2 x (conv 3x3 - norm - ReLU)          |
        |                                   |
        +--> y' (next unit's y)             |
        |                                   |
      conv 1x1 -> residual channels         |
        |                                   |
      nearest up-sample to z's size ----->  + --> z' (next unit's z)

FRRN-A chains 3 units at 1/2, 4 at 1/4, 2 at 1/8 and 2 at 1/16 on the way down
and 2 per scale on the way up; here ``depth`` sets the number of scales and
``units_per_stage`` the chain lengths, with FRRN-A's pattern as the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from lightning_modules.networks.feature_layers import FeatureLayer
from lightning_modules.networks.unet import (
    CONV,
    MAX_POOL,
    ConvBlock,
    Norm,
    check_options,
    check_spatial_size,
    norm_layer,
)

# FRRN-A's units per encoder stage (1/2, 1/4, 1/8, 1/16) and per decoder stage.
FRRN_A_ENCODER_UNITS = (3, 4, 2, 2)
FRRN_A_DECODER_UNITS = 2
# FRRN-A's residual units before the split and after the merge of the streams.
STEM_RESIDUAL_UNITS = 3


def default_units_per_stage(depth: int) -> tuple[int, ...]:
    """FRRN-A's chain lengths for ``depth`` scales: encoder stages, then decoder stages.

    Stages deeper than FRRN-A's four repeat its last encoder stage's two units.

    Example:
        >>> default_units_per_stage(5)  # FRRN-A itself
        (3, 4, 2, 2, 2, 2, 2)
    """
    encoder = [*FRRN_A_ENCODER_UNITS, *[FRRN_A_ENCODER_UNITS[-1]] * depth][: depth - 1]
    return (*encoder, *[FRRN_A_DECODER_UNITS] * (depth - 2))


def _upsample_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Nearest-neighbour up-sampling to exactly ``size`` (odd sizes included)."""
    if x.shape[2:] == size:
        return x
    return nn.functional.interpolate(x, size=tuple(size), mode="nearest")


class ResidualUnit(nn.Module):
    """``x + block(x)`` with two 3x3(x3) conv - norm - ReLU layers at constant width."""

    def __init__(self, spatial_dims: int, channels: int, *, norm: Norm = "batch") -> None:
        super().__init__()
        self.block = ConvBlock(spatial_dims, channels, channels, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in, same shape out."""
        return x + self.block(x)


class FRRU(nn.Module):
    """Full-resolution residual unit: one exchange between the pooling and residual streams.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the incoming pooling stream.
        out_channels: channels of the outgoing pooling stream.
        residual_channels: channels of the residual stream.
        scale: the pooling stream's down-sampling factor relative to the residual stream.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout rate between the two convolutions.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        residual_channels: int,
        *,
        scale: int,
        norm: Norm = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.pool = MAX_POOL[spatial_dims](scale)
        self.block = ConvBlock(
            spatial_dims,
            in_channels + residual_channels,
            out_channels,
            norm=norm,
            dropout=dropout,
        )
        self.project = CONV[spatial_dims](out_channels, residual_channels, 1)

    def forward(
        self, pooling: torch.Tensor, residual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``(y, z)`` to ``(y', z')``: y at 1/scale of z's size, z at full resolution."""
        # Floor division commutes (floor(floor(n / a) / b) == floor(n / ab)), so pooling z
        # once by 2^n gives the size that n halvings gave the pooling stream.
        pooling = self.block(torch.cat([pooling, self.pool(residual)], dim=1))
        update = _upsample_to(self.project(pooling), residual.shape[2:])
        return pooling, residual + update


class FRRN(nn.Module):
    """Full-resolution residual network (Pohlen et al., CVPR 2017), 2D or 3D.

    A stem (conv 5x5 - norm - ReLU and residual units) at full resolution, split
    into the pooling stream and, by a 1x1 conv, the residual stream; encoder
    stages of FRRUs at 1/2 ... 1/2^(depth-1) and decoder stages back up to 1/2;
    the two streams concatenated at full resolution, a 1x1 conv, residual units
    and a 1x1 classifier. The pooling stream doubles its width per scale like the
    U-Net's levels (FRRN-A narrows its decoder; the same widths down and up keep
    the comparison with the U-Net about skip connections alone).

    The residual stream passes through the identity module ``residual_stream``
    after the split and after every FRRU: a forward hook on it sees every state
    of the stream (the last call is the stream that reaches the head).

    Args:
        spatial_dims: 2 for slices, 3 for volumes.
        in_channels: input image channels (one per MRI contrast).
        out_channels: number of classes, background included.
        depth: number of scales, full resolution included (FRRN-A has 5).
        base_channels: width at full resolution; the pooling stream doubles it per scale.
        residual_channels: width of the residual stream (FRRN-A: 32 for 48 base
            channels); ``None`` takes ``base_channels``.
        units_per_stage: FRRUs per stage, the ``depth - 1`` encoder stages (1/2 first)
            then the ``depth - 2`` decoder stages (deepest first); ``None`` takes
            FRRN-A's pattern, see :func:`default_units_per_stage`.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout rate inside the FRRUs of the deepest stage.

    Example:
        >>> net = FRRN(spatial_dims=2, in_channels=2, out_channels=5)
        >>> net(torch.zeros(1, 2, 33, 47)).shape
        torch.Size([1, 5, 33, 47])
    """

    # Whether decoder stages also take the encoder's pooling stream at their scale by
    # concatenation (U-Net's long skips); the hybrid network switches this on.
    long_skips: ClassVar[bool] = False

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        base_channels: int = 10,
        residual_channels: int | None = None,
        units_per_stage: Sequence[int] | None = None,
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
            min_depth=2,
        )
        if residual_channels is None:
            residual_channels = base_channels
        if residual_channels < 1:
            raise ValueError(f"residual_channels must be at least 1, got {residual_channels!r}")
        units = default_units_per_stage(depth) if units_per_stage is None else units_per_stage
        units = tuple(units)
        if len(units) != 2 * depth - 3 or any(n < 1 for n in units):
            raise ValueError(
                f"units_per_stage must hold 2 * depth - 3 = {2 * depth - 3} positive counts "
                f"({depth - 1} encoder then {depth - 2} decoder stages), got {units_per_stage!r}"
            )
        self.spatial_dims = spatial_dims
        self.depth = depth
        self.units_per_stage = units
        self.residual_channels = residual_channels
        widths = [base_channels * 2**level for level in range(depth)]
        conv = CONV[spatial_dims]
        bias = norm == "none"  # redundant before a re-centring norm

        self.stem = nn.Sequential(
            conv(in_channels, base_channels, 5, padding=2, bias=bias),
            norm_layer(norm, spatial_dims, base_channels),
            nn.ReLU(inplace=True),
            *[
                ResidualUnit(spatial_dims, base_channels, norm=norm)
                for _ in range(STEM_RESIDUAL_UNITS)
            ],
        )
        self.split = conv(base_channels, residual_channels, 1)
        self.residual_stream = nn.Identity()
        self.pool = MAX_POOL[spatial_dims](2)

        def stage(level: int, in_width: int, count: int, dropout: float) -> nn.ModuleList:
            return nn.ModuleList(
                FRRU(
                    spatial_dims,
                    in_width if unit == 0 else widths[level],
                    widths[level],
                    residual_channels,
                    scale=2**level,
                    norm=norm,
                    dropout=dropout,
                )
                for unit in range(count)
            )

        self.encoder = nn.ModuleList()
        channels = base_channels
        for level in range(1, depth):
            is_deepest = level == depth - 1
            count = units[level - 1]
            self.encoder.append(stage(level, channels, count, dropout if is_deepest else 0.0))
            channels = widths[level]
        self.decoder = nn.ModuleList()
        for index, level in enumerate(range(depth - 2, 0, -1)):
            skip = widths[level] if self.long_skips else 0
            count = units[depth - 1 + index]
            self.decoder.append(stage(level, channels + skip, count, 0.0))
            channels = widths[level]

        skip = base_channels if self.long_skips else 0
        self.merge = nn.Sequential(
            conv(channels + residual_channels + skip, base_channels, 1, bias=bias),
            norm_layer(norm, spatial_dims, base_channels),
            nn.ReLU(inplace=True),
            *[
                ResidualUnit(spatial_dims, base_channels, norm=norm)
                for _ in range(STEM_RESIDUAL_UNITS)
            ],
        )
        self.head = conv(base_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to logits ``(B, out_channels, *spatial)``."""
        check_spatial_size(x, self.depth)
        pooling = self.stem(x)
        residual = self.residual_stream(self.split(pooling))
        skips = [pooling]  # the pooling stream at each scale, for the sizes (and long skips)
        for stage in self.encoder:
            pooling = self.pool(pooling)
            for unit in stage:
                pooling, residual = unit(pooling, residual)
                residual = self.residual_stream(residual)
            skips.append(pooling)
        skips.pop()  # the deepest stage's output is ``pooling`` itself
        for stage in self.decoder:
            skip = skips.pop()
            pooling = _upsample_to(pooling, skip.shape[2:])
            if self.long_skips:
                pooling = torch.cat([skip, pooling], dim=1)
            for unit in stage:
                pooling, residual = unit(pooling, residual)
                residual = self.residual_stream(residual)
        skip = skips.pop()
        streams = [_upsample_to(pooling, residual.shape[2:]), residual]
        if self.long_skips:
            streams.insert(0, skip)
        return self.head(self.merge(torch.cat(streams, dim=1)))

    def feature_layers(self) -> dict[str, FeatureLayer]:
        """Hook points by resolution level (0 = full), named as the U-Net's.

        ``encoder_0`` is the stem, ``encoder_<level>`` the pooling stream leaving
        each encoder stage; ``residual_stream`` the residual stream's final state
        (what reaches the merge); ``decoder_<level>`` the pooling stream leaving
        each decoder stage, and ``decoder_0`` the merge (the full-resolution
        decoding). With long skips, ``skip_<level>`` is what the first unit of a
        decoder stage receives, ``concat(skip, up-sampled)``, and ``skip_0`` the
        merge's input, ``concat(stem, up-sampled pooling stream, residual stream)``.
        """
        layers = {"encoder_0": FeatureLayer(self.stem)}
        layers |= {
            f"encoder_{level}": FeatureLayer(stage[-1])
            for level, stage in enumerate(self.encoder, start=1)
        }
        # Decoder stages run deepest first, level depth - 2 down to 1; the merge is level 0.
        levels = range(self.depth - 2, 0, -1)
        if self.long_skips:
            layers |= {
                f"skip_{level}": FeatureLayer(stage[0], reads_input=True)
                for level, stage in zip(levels, self.decoder, strict=True)
            }
            layers["skip_0"] = FeatureLayer(self.merge, reads_input=True)
        layers["residual_stream"] = FeatureLayer(self.residual_stream)
        layers |= {
            f"decoder_{level}": FeatureLayer(stage[-1])
            for level, stage in zip(levels, self.decoder, strict=True)
        }
        layers["decoder_0"] = FeatureLayer(self.merge)
        return layers
