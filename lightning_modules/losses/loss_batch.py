"""``prepare``: the one preprocessing step every loss shares, and option checks.

Every base loss starts with ``prepare(logits, target, mask, distance)``: it checks
shapes, removes unlabelled voxels, and returns a ``LossBatch`` that the bases and
the weightings read. Nothing of it is repeated in a loss class.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class LossBatch:
    """A batch ready for a loss: unlabelled voxels already removed.

    ``K`` is the number of classes the loss sees: ``C``, or ``C - 1`` after
    ``without_background``.

    Attributes:
        probabilities: softmax ``(B, K, *spatial)``; 0 where unlabelled.
        one_hot: one-hot truth ``(B, K, *spatial)``; 0 where unlabelled.
        mask: voxel weights ``(B, 1, *spatial)``; 0 = unlabelled, fractions weigh voxels.
            The losses multiply by it once, like any voxel weight (the tensors above
            are not multiplied by it, so a fraction is not squared in ``g p``).
        target: labels ``(B, 1, *spatial)`` over all ``C`` classes; 0 where unlabelled.
        log_true_probability: ``log p_{i, y_i}`` ``(B, 1, *spatial)``, from the softmax
            over all ``C`` classes; finite where unlabelled (multiply by ``mask``).
        distance: signed distance maps ``(B, K, *spatial)``, 0 where unlabelled, or ``None``.
        num_classes: ``C``, the classes of the logits.
        first_class: index in ``0..C-1`` of the first of the ``K`` classes (0 or 1).
    """

    probabilities: torch.Tensor
    one_hot: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    log_true_probability: torch.Tensor
    distance: torch.Tensor | None
    num_classes: int
    first_class: int = 0

    @property
    def spatial_dims(self) -> tuple[int, ...]:
        """The spatial axes ``2, 3, ...`` of the ``(B, K, *spatial)`` tensors."""
        return tuple(range(2, self.probabilities.ndim))

    def without_background(self) -> LossBatch:
        """The same batch without class 0 in the per-class tensors."""
        if self.first_class:
            return self
        return replace(
            self,
            probabilities=self.probabilities[:, 1:],
            one_hot=self.one_hot[:, 1:],
            distance=None if self.distance is None else self.distance[:, 1:],
            first_class=1,
        )


def prepare(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    distance: torch.Tensor | None = None,
) -> LossBatch:
    """Check shapes and build the ``LossBatch`` of one call.

    Logits are ``(B, C, *spatial)``, the target ``(B, *spatial)`` integer labels,
    the mask ``(B, *spatial)`` and the distance maps ``(B, C, *spatial)``.
    Unlabelled voxels (mask 0) are replaced with ``torch.where`` before anything
    is computed from them, so neither non-finite logits, placeholder labels
    (e.g. 255) nor junk distances there can reach the value or the gradient.

    Raises:
        ValueError: naming the tensor whose shape does not fit.
    """
    if logits.ndim < 3:
        raise ValueError(f"logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}; expected (B, *spatial) integer labels"
        )
    if mask is None:
        mask = torch.ones_like(target, dtype=logits.dtype)
    elif mask.shape != target.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} differs from target {tuple(target.shape)}"
        )
    if distance is not None and distance.shape != logits.shape:
        raise ValueError(
            f"distance shape {tuple(distance.shape)} differs from logits shape "
            f"{tuple(logits.shape)}; expected one signed distance map per class, "
            "(B, C, *spatial)"
        )
    mask = mask.to(logits.dtype).unsqueeze(1)
    labelled = mask > 0
    mask = torch.where(labelled, mask, 0.0)  # negative or NaN entries count as unlabelled
    target = torch.where(labelled, target.long().unsqueeze(1), 0)
    log_probabilities = torch.where(labelled, logits, 0.0).log_softmax(dim=1)
    one_hot = F.one_hot(target.squeeze(1), logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    if distance is not None:
        distance = torch.where(labelled, distance.detach().to(logits.dtype), 0.0)
    return LossBatch(
        probabilities=torch.where(labelled, log_probabilities.exp(), 0.0),
        one_hot=torch.where(labelled, one_hot, 0.0),
        mask=mask,
        target=target,
        log_true_probability=log_probabilities.gather(1, target),
        distance=distance,
        num_classes=logits.shape[1],
    )


def check_number(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number ``>= minimum`` (``>`` if strict).

    Raises:
        ValueError: naming the argument and the bad value.
    """
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number
