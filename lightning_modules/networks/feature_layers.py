"""Named hook points for looking inside a network: where each feature map is read.

A network lists its hook points with ``feature_layers()`` (name -> :class:`FeatureLayer`);
:func:`capture_features` hooks them for one forward pass and hands back the maps.
Names follow resolution levels, 0 being full resolution: ``encoder_<level>``,
``skip_<level>``, ``decoder_<level>`` and, in two-stream networks, ``residual_stream``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureLayer:
    """Where one named feature map is read.

    Attributes:
        module: the module to hook.
        reads_input: read the module's first positional input (what a block
            receives, such as a skip concatenation) instead of its output.

    A tuple output gives its first element (the pooling stream of an FRRU); a
    module called several times in one pass gives its last call (the final state
    of FRRN's ``residual_stream``).
    """

    module: nn.Module
    reads_input: bool = False


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple | list) else value


@contextmanager
def capture_features(layers: Mapping[str, FeatureLayer]) -> Iterator[dict[str, torch.Tensor]]:
    """Hook ``layers`` while the block runs; the yielded dict fills in as the network runs.

    Maps are detached float32 copies on the CPU, so later in-place operations
    of the network (ReLU) cannot change them. The hooks are removed on exit.

    Example:
        >>> from lightning_modules.networks import UNet
        >>> net = UNet(spatial_dims=2, in_channels=1, out_channels=2, depth=2)
        >>> with capture_features(net.feature_layers()) as maps:
        ...     _ = net(torch.zeros(1, 1, 8, 8))
        >>> sorted(maps)
        ['decoder_0', 'encoder_0', 'encoder_1', 'skip_0']
    """
    maps: dict[str, torch.Tensor] = {}

    def keep(name: str, value: Any) -> None:
        maps[name] = _first(value).detach().to("cpu", torch.float32, copy=True)

    handles = []
    for name, layer in layers.items():
        if layer.reads_input:
            hook = layer.module.register_forward_pre_hook(
                lambda _module, args, name=name: keep(name, args)
            )
        else:
            hook = layer.module.register_forward_hook(
                lambda _module, _args, output, name=name: keep(name, output)
            )
        handles.append(hook)
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()
