"""A fully convolutional encoder-decoder without skip connections, for 2D or 3D inputs.

The baseline of the skip-connection thread: the U-Net's encoder and decoder with
the long concatenation skips removed, so every detail lost by pooling must be
recovered from the bottleneck alone::

    x -> enc0 -> pool -> enc1 -> pool -> ... -> bottleneck
                                                  |
    logits <- head <- dec0 <- up <- dec1 <- up <- +
"""

from __future__ import annotations

from typing import ClassVar

from lightning_modules.networks.unet import UNet


class FCN(UNet):
    """Encoder-decoder with no skip connections (the skip-connection thread's baseline).

    The same levels, widths and blocks as :class:`~lightning_modules.networks.unet.UNet`
    except that each decoder block sees only the up-sampled map, not the encoder's;
    the constructor arguments are the U-Net's.

    Example:
        >>> import torch
        >>> net = FCN(spatial_dims=2, in_channels=2, out_channels=5)
        >>> net(torch.zeros(1, 2, 33, 47)).shape
        torch.Size([1, 5, 33, 47])
    """

    long_skips: ClassVar[bool] = False
