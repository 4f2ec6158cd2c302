"""The report's hybrid network: U-Net's long skips and FRRN's full-resolution residual stream.

The report (thread 2; Sugino et al., Med. Phys. 2021) proposes a network with both
skip designs; this is one concrete design of it, built to differ from FRRN by the
long skips alone: an :class:`~lightning_modules.networks.frrn.FRRN` whose decoder
stages, like a U-Net's decoder levels, also receive the encoder's pooling stream at
their own scale by concatenation, and whose final merge also receives the stem's
full-resolution features. The long skips carry each encoder scale's features
across; the residual stream carries full-resolution detail through every unit.
Depth 4; ``==>`` is a long concatenation skip, ``-->`` the pooling stream::

    stem ==========================================================> merge -> head
      |                                                              ^  ^
      +--> FRRUs 1/2 ===============================> FRRUs 1/2 -----+  |
             |                                          ^               |
             +--> FRRUs 1/4 ==========> FRRUs 1/4 ------+               |
                    |                      ^                            |
                    +--> FRRUs 1/8 --------+                            |
                                                                        |
    residual stream (full resolution): split from the stem by a 1x1     |
    conv; every FRRU above pools it to its own scale, reads it and adds |
    back an up-sampled 1x1 projection; its last state joins the merge --+
"""

from __future__ import annotations

from typing import ClassVar

from lightning_modules.networks.frrn import FRRN


class HybridNet(FRRN):
    """FRRN with U-Net's long concatenation skips: both skip designs in one network.

    Each decoder stage's first FRRU takes ``concat(encoder pooling stream at that
    scale, up-sampled decoder pooling stream)``; the final merge also takes the
    stem's output. Everything else, the ``residual_stream`` hook point included,
    is as in :class:`~lightning_modules.networks.frrn.FRRN`.

    Args:
        spatial_dims: 2 for slices, 3 for volumes.
        in_channels: input image channels (one per MRI contrast).
        out_channels: number of classes, background included.
        depth: number of scales, full resolution included.
        base_channels: width at full resolution; the pooling stream doubles it per scale.
        residual_channels: width of the residual stream; ``None`` takes ``base_channels``.
        units_per_stage: FRRUs per stage, encoder stages then decoder stages; ``None``
            takes FRRN-A's pattern.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout rate inside the FRRUs of the deepest stage.

    Example:
        >>> import torch
        >>> net = HybridNet(spatial_dims=2, in_channels=2, out_channels=5)
        >>> net(torch.zeros(1, 2, 33, 47)).shape
        torch.Size([1, 5, 33, 47])
    """

    long_skips: ClassVar[bool] = True
