"""Channels-last convolutions: the same network, 1.25-1.5x faster on a CPU.

PyTorch's convolutions (oneDNN on a CPU, cuDNN on a GPU) are fastest when the
channel is the innermost axis of the weights and activations (``NHWC``, or
``NDHWC`` in 3D). Storing a network's 4D and 5D parameters that way is enough: a
convolution whose weight is channels-last gives a channels-last output, so every
layer after the first runs in that layout, and the logits differ from the default
layout's only by float rounding (about 1e-7). ``docs/performance.md`` has the
measured gain (``benchmarks/memory_format.py``).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

FORMATS: dict[int, torch.memory_format] = {4: torch.channels_last, 5: torch.channels_last_3d}


def to_channels_last(module: nn.Module) -> int:
    """Store every 4D (2D convolution) and 5D (3D convolution) parameter channels-last.

    The parameters stay the same objects, so an optimiser built before or after sees
    them; ``load_state_dict`` copies values into them and keeps their layout. Returns
    how many parameters were converted.
    """
    converted = 0
    for parameter in module.parameters():
        layout = FORMATS.get(parameter.dim())
        if layout is not None:
            parameter.data = parameter.data.contiguous(memory_format=layout)
            converted += 1
    return converted


class ChannelsLast(pl.Callback):
    """Convert the LightningModule's convolutions to channels-last before it runs.

    ``setup`` runs before Lightning builds the optimisers, wraps the module for DDP
    or restores a checkpoint, for fit, validate, test and predict alike, so every
    research thread gets it without code of its own. A module that builds a network
    later, in ``configure_model`` (pix2pix tested from a checkpoint alone), has it
    converted when validation, test or prediction starts; a fit's networks are never
    converted after ``setup``, where DDP would already hold their old layout.

    Args:
        enabled: False keeps PyTorch's default layout (to compare, or for a layer
            that does not support channels-last).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def _convert(self, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            to_channels_last(pl_module)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._convert(pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not a fit's validation: see above
            self._convert(pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._convert(pl_module)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._convert(pl_module)
