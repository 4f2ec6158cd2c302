"""Parameters and multiply-adds of a network, for the ablation tables.

Multiply-adds (MACs) are counted for the layers that dominate a segmentation
network's cost, convolutions, transposed convolutions and linear layers, by
forward hooks during one forward pass; biases, norms, activations, pooling and
interpolation are not counted. A layer called twice is counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _conv_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """MACs of one call of a conv, transposed conv or linear layer."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    taps = math.prod(module.kernel_size)
    if module.transposed:
        # every input voxel scatters a kernel into each output channel of its group
        return inputs[0].numel() * (module.out_channels // module.groups) * taps
    # every output voxel gathers a kernel over the input channels of its group
    return output.numel() * (module.in_channels // module.groups) * taps


def model_complexity(network: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Count the parameters of ``network`` and its MACs for one forward pass.

    The pass runs in eval mode without gradients on a zero tensor of
    ``input_shape`` (batch included: MACs grow with the batch); the training
    mode of every module is restored and the hooks removed afterwards.

    Args:
        network: any ``nn.Module`` taking one tensor.
        input_shape: ``(B, C, *spatial)``.

    Returns:
        ``{"parameters": ..., "macs": ...}``.

    Example:
        >>> model_complexity(nn.Conv2d(1, 2, 3, padding=1), (1, 1, 4, 4))
        {'parameters': 20, 'macs': 288}
    """
    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += _conv_macs(module, inputs, output)

    handles = [
        module.register_forward_hook(count)
        for module in network.modules()
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
    ]
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else None
    dtype = parameter.dtype if parameter is not None else None
    modes = {module: module.training for module in network.modules()}
    try:
        network.eval()
        with torch.no_grad():
            network(torch.zeros(*input_shape, device=device, dtype=dtype))
    finally:
        for module, training in modes.items():
            module.training = training
        for handle in handles:
            handle.remove()
    return {"parameters": sum(p.numel() for p in network.parameters()), "macs": macs}
