"""A training clock that probes the test Dice at fixed points of training time.

Used by ``benchmarks/time_to_dice.py`` for both of its pipelines: after every training
step the loop calls ``TrainingClock.tick``; once the clock passes the next point it
evaluates, with the clock stopped, so that evaluation never counts as training time.
Not a benchmark itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from lightning_modules.metrics import dice_per_class

Segmenter = Callable[[torch.Tensor], torch.Tensor]  # (C, H, W, D) -> logits (K, H, W, D)


@dataclass
class Curve:
    """Test Dice at points of the training clock."""

    seconds: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)

    def first_reaching(self, target: float) -> float | None:
        """Training seconds of the first probe with Dice at least ``target``; None if none."""
        return next((s for s, d in zip(self.seconds, self.dice, strict=True) if d >= target), None)


class TrainingClock:
    """Training wall time, without the probes; a probe every ``every`` s until ``budget`` s.

    Args:
        every: seconds of training between probes.
        budget: seconds of training in all; the last probe falls on it.
        evaluate: returns the test Dice of the model as it is now.
        name: printed with each probe.
    """

    def __init__(
        self, every: float, budget: float, evaluate: Callable[[], float], name: str
    ) -> None:
        self.every, self.budget, self.evaluate, self.name = every, budget, evaluate, name
        self.curve = Curve()
        self.steps = 0
        self._next = every
        self._paused = 0.0
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training so far."""
        return time.perf_counter() - self._started - self._paused

    def tick(self) -> bool:
        """Count a step, probe if a point has passed; True once the budget is spent."""
        self.steps += 1
        now = self.elapsed()
        if now >= self._next or now >= self.budget:
            probing = time.perf_counter()
            dice = self.evaluate()
            self._paused += time.perf_counter() - probing
            self.curve.seconds.append(now)
            self.curve.dice.append(dice)
            print(f"  {self.name:<8} {now:6.1f} s  step {self.steps:5d}  test Dice {dice:.3f}")
            while self._next <= now:
                self._next += self.every
        return now >= self.budget


def test_dice(
    segment: Segmenter, cases: Sequence[tuple[torch.Tensor, torch.Tensor]], num_classes: int
) -> float:
    """Mean over cases of the mean foreground Dice of whole-volume predictions.

    The module is evaluated in eval mode by the caller; torch's random state is forked
    so that a probe does not shift the training draws that follow it.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        scores = [
            dice_per_class(segment(image).argmax(0), label, num_classes).mean()
            for image, label in cases
        ]
    return float(torch.stack(scores).mean())
