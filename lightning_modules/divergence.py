"""Stop a diverging run with the reason, instead of letting it train on NaN.

A loss that turns infinite or NaN never recovers: every weight it touches becomes NaN,
and a run that goes on ends FINISHED with garbage. ``check_finite`` raises before the
optimiser step, naming the epoch, the step and what went wrong, so the run ends FAILED
with that reason (``experiments.tracking.RunRecorder`` records it) and an ablation moves
on. Network outputs are checked too: a loss such as binary cross-entropy refuses a NaN
input with a message that names neither the network nor the step.

>>> check_finite({"generator loss": torch.tensor(1.0)}, epoch=0, step=3)
>>> check_finite({"discriminator output": torch.tensor([0.0, float("nan")])}, epoch=2, step=7)
Traceback (most recent call last):
...
lightning_modules.divergence.NonFiniteLossError: epoch 2, step 7: discriminator output is nan
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class NonFiniteLossError(ArithmeticError):
    """A training loss or network output became NaN or infinite; the message says when."""


def check_finite(values: Mapping[str, torch.Tensor], *, epoch: int, step: int) -> None:
    """Raise ``NonFiniteLossError`` for the first of ``values`` with a NaN or infinite entry."""
    for name, tensor in values.items():
        tensor = tensor.detach()
        if torch.isfinite(tensor).all():
            continue
        kind = "nan" if torch.isnan(tensor).any() else "infinite"
        raise NonFiniteLossError(f"epoch {epoch}, step {step}: {name} is {kind}")
