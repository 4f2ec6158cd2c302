"""Stop a diverging run with the reason, instead of letting it train on NaN.

A loss that turns infinite or NaN never recovers: every weight it touches becomes NaN,
and a run that goes on ends FINISHED with garbage. ``check_finite`` raises before the
optimiser step, naming the epoch, the step and the loss, so the run ends FAILED with
that reason (``experiments.tracking.RunRecorder`` records it) and an ablation moves on.

>>> check_finite(epoch=0, step=3, generator=torch.tensor(1.0))
>>> check_finite(epoch=2, step=7, discriminator=torch.tensor(float("nan")))
Traceback (most recent call last):
...
lightning_modules.divergence.NonFiniteLossError: epoch 2, step 7: discriminator loss is nan
"""

from __future__ import annotations

import torch


class NonFiniteLossError(ArithmeticError):
    """A training loss became NaN or infinite; the message says when and which."""


def check_finite(*, epoch: int, step: int, **losses: torch.Tensor) -> None:
    """Raise ``NonFiniteLossError`` for the first of ``losses`` that is not finite."""
    for name, loss in losses.items():
        value = float(loss.detach())
        if not torch.isfinite(torch.tensor(value)):
            raise NonFiniteLossError(f"epoch {epoch}, step {step}: {name} loss is {value}")
