"""The loss-study weightings: each turns a ``LossBatch`` into class or voxel weights.

A weighting is small: ``forward(batch, base)`` returns ``Weights`` holding class
weights ``w_c`` (shape ``(K,)``), voxel weights ``w_ic`` (broadcastable to
``(B, K, *spatial)``), or both. The two bases combine them the same way for every
weighting (``cross_entropy.py``, ``dice.py``), so a new weighting is one class here
plus one line in ``WEIGHTINGS``. Sugino et al., Healthcare 9(8):938 (2021), compare
these five weightings on cross-entropy and Dice (doi 10.3390/healthcare9080938).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from lightning_modules.losses.loss_batch import LossBatch, check_number

LossBase = Literal["ce", "dice"]


@dataclass(frozen=True)
class Weights:
    """Class weights ``(K,)`` and voxel weights ``(B, K or 1, *spatial)``; ``None`` = all 1."""

    classes: torch.Tensor | None = None
    voxels: torch.Tensor | None = None

    def at_true_class(self, target: torch.Tensor) -> torch.Tensor | None:
        """``w_{i, y_i}`` ``(B, 1, *spatial)``: each voxel's weight for its true class.

        ``sum_c w_ic g_ic`` with a one-hot ``g``, picked by index (``target`` is
        ``(B, 1, *spatial)`` over all classes) rather than multiplied out.
        """
        weight = None if self.classes is None else self.classes[target]
        if self.voxels is not None:
            voxels = self.voxels if self.voxels.shape[1] == 1 else self.voxels.gather(1, target)
            weight = voxels if weight is None else weight * voxels
        return weight


class LossWeighting(nn.Module):
    """Base class: ``forward(batch, base)`` returns the ``Weights`` of a batch."""

    name: ClassVar[str] = "none"
    # What only the data module can provide: the training set's class frequencies
    # (given once, at construction) or per-batch distance maps.
    needs_class_frequencies: ClassVar[bool] = False
    needs_distance: ClassVar[bool] = False

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        return Weights()


class NoWeighting(LossWeighting):
    """All weights 1: the plain base loss."""


def _finite_or_largest(weights: torch.Tensor) -> torch.Tensor:
    """Replace non-finite weights (absent classes) by the largest finite one, or 1 if none."""
    finite = torch.isfinite(weights)
    largest = torch.where(finite, weights, 0.0).amax()
    return torch.where(finite, weights, torch.where(finite.any(), largest, 1.0))


class InverseFrequencyWeighting(LossWeighting):
    """Inverse class frequency of the batch, ``w_c ∝ 1 / (sum_i g_ic)^a``.

    - Dice: ``w_c = 1 / (sum_i g_ic)^2``, the generalised Dice loss of Sudre et al.,
      DLMIA 2017 (arXiv:1707.03237), as MONAI's ``GeneralizedDiceLoss(w_type="square")``.
    - Cross-entropy: ``a = 1``, scaled by the labelled-voxel count ``N``:
      ``w_c = N / sum_i g_ic``, the inverse batch frequency. With the ``1/N`` of the
      cross-entropy this is ``sum_c mean_{i in c} -log p_ic``, the sum of the
      class-mean losses: ``O(1)``, where the bare ``1 / sum_i g_ic`` would shrink the
      loss (and its gradients, below Adam's epsilon) by the patch size ``N``.

    Counts are over the labelled voxels of the whole batch (weighted by the
    mask). A class absent from the batch has an infinite weight, which is replaced
    by the largest finite weight of the batch (MONAI's rule), or by 1 when no
    class is present (an empty mask): never inf or NaN.
    """

    name = "inverse"

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        counts = (batch.mask * batch.one_hot).sum(dim=(0, *batch.spatial_dims))
        if base == "ce":
            weights = batch.mask.sum() / counts
        else:
            weights = counts.pow(-2)
        return Weights(classes=_finite_or_largest(weights))


class MedianFrequencyWeighting(LossWeighting):
    """Median frequency balancing, ``w_c = median_k(f_k) / f_c`` (Eigen & Fergus, ICCV 2015).

    ``f_c`` is the frequency of class ``c`` over the training set, computed once
    by the data module; only ratios matter, so shares or voxel counts both do.

    Args:
        class_frequencies: one positive value per class, background first (its
            length is checked against the logits' classes at each call).

    Example:
        >>> weighting = MedianFrequencyWeighting(class_frequencies=[0.9, 0.08, 0.02])
        >>> weighting.class_weights  # median 0.08: 0.08 / 0.9, 0.08 / 0.08, 0.08 / 0.02
        tensor([0.0889, 1.0000, 4.0000], dtype=torch.float64)
    """

    name = "median"
    needs_class_frequencies = True

    def __init__(self, *, class_frequencies: Sequence[float] | None = None) -> None:
        super().__init__()
        if class_frequencies is None:
            raise ValueError(
                "weighting 'median' needs class_frequencies: the frequency of each class "
                "over the training set, background first (the data module computes it)"
            )
        try:
            frequencies = torch.as_tensor(class_frequencies, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"class_frequencies must be a sequence of numbers, got {class_frequencies!r}"
            ) from error
        if frequencies.ndim != 1 or len(frequencies) < 2:
            raise ValueError(
                "class_frequencies must hold one value per class (at least 2), "
                f"got {class_frequencies!r}"
            )
        if not bool((torch.isfinite(frequencies) & (frequencies > 0)).all()):
            raise ValueError(
                f"class_frequencies must all be finite and > 0, got {class_frequencies!r}; "
                "a class absent from the training set cannot be weighted by its frequency"
            )
        median = statistics.median(frequencies.tolist())
        self.register_buffer("class_weights", median / frequencies, persistent=False)

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        if len(self.class_weights) != batch.num_classes:
            raise ValueError(
                f"class_frequencies has {len(self.class_weights)} values but the logits "
                f"have {batch.num_classes} classes; give one per class, background first"
            )
        weights = self.class_weights[batch.first_class :]
        return Weights(classes=weights.to(batch.probabilities))


class FocalWeighting(LossWeighting):
    """Weighting by predicted probability: voxel weight ``(1 - p_{i, y_i})^gamma``.

    Cross-entropy: the focal loss of Lin et al., ICCV 2017 (arXiv:1708.02002),
    ``-(1/N) sum_i (1 - p_{i,y_i})^gamma log p_{i,y_i}``; the weight stays in the
    graph, as in the paper and MONAI's ``FocalLoss``. Dice: the same voxel weight
    multiplies both sums of every class (see ``DiceLoss``), where it is detached.
    ``gamma = 0`` gives the base loss exactly.

    Args:
        gamma: focusing exponent, ``>= 0``.
    """

    name = "focal"

    def __init__(self, *, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = check_number("gamma", gamma)

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        if self.gamma == 0:
            return Weights()
        # Clamped away from 0 so that a saturated softmax (p = 1 in floating point)
        # gets a zero gradient instead of 0 * inf for gamma < 1.
        tiny = torch.finfo(batch.log_true_probability.dtype).tiny
        difficulty = (1 - batch.log_true_probability.exp()).clamp_min(tiny)
        return Weights(voxels=difficulty.pow(self.gamma))


def _require_distance(batch: LossBatch, name: str) -> torch.Tensor:
    if batch.distance is None:
        raise ValueError(
            f"weighting {name!r} needs distance: call loss(logits, target, mask, distance) "
            "with the per-class signed distance maps of the ground truth, shaped like the "
            "logits (B, C, *spatial)"
        )
    return batch.distance


class DistanceTransformWeighting(LossWeighting):
    """Distance-transform-map (DTM) weighting: ``w_ic = 1 + w0 exp(-d_ic^2 / (2 sigma^2))``.

    ``d_ic`` is the signed distance (voxels) of voxel ``i`` to the boundary of the
    ground-truth structure ``c``, precomputed per subject by the data pipeline.
    The weight is ``1 + w0`` on the boundary and decays to 1 within a few
    ``sigma``: the border term of the U-Net weight map (Ronneberger et al., MICCAI
    2015, eq. 2, ``w0 = 10``, ``sigma = 5``), with the distance to the structure's
    own boundary, used as the DTM weighting of Sugino et al. 2021. Cross-entropy
    uses each voxel's true class (its distance to the nearest label boundary);
    Dice weights the terms of every class, so false positives near a structure
    count more than far ones.

    Args:
        sigma: width of the emphasised band, in voxels, ``> 0``.
        boundary_weight: ``w0``, the extra weight on the boundary, ``>= 0``.
    """

    name = "dtm"
    needs_distance = True

    def __init__(self, *, sigma: float = 5.0, boundary_weight: float = 10.0) -> None:
        super().__init__()
        self.sigma = check_number("sigma", sigma, strict=True)
        self.boundary_weight = check_number("boundary_weight", boundary_weight)

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        distance = _require_distance(batch, self.name)
        return Weights(
            voxels=1 + self.boundary_weight * torch.exp(-0.5 * (distance / self.sigma) ** 2)
        )


def distance_penalty(distance: torch.Tensor) -> torch.Tensor:
    """Caliva's penalty map ``Φ`` in ``[0, 1]`` from signed distance maps ``(B, C, *spatial)``.

    For each item and class, the distance magnitude is inverted and normalised
    apart inside (``d < 0``) and outside (``d > 0``) the structure:
    ``Φ = 1 - |d| / max |d|`` over that side, so boundary voxels (``d = 0``) get 1
    and the farthest voxels 0. ``+inf`` (an absent class) gives 0, as does a
    class with the same distance everywhere.
    """
    magnitude = distance.abs()
    finite = torch.where(torch.isfinite(magnitude), magnitude, 0.0)
    inside = distance < 0
    spatial = tuple(range(2, distance.ndim))
    largest_inside = torch.where(inside, finite, 0.0).amax(dim=spatial, keepdim=True)
    largest_outside = torch.where(inside, 0.0, finite).amax(dim=spatial, keepdim=True)
    scale = torch.where(inside, largest_inside, largest_outside)
    return (1 - magnitude / scale.clamp_min(torch.finfo(scale.dtype).tiny)).clamp(0, 1)


class DistancePenaltyWeighting(LossWeighting):
    """Distance penalty term (DPT) of Caliva et al., MIDL 2019 (arXiv:1908.03679).

    The voxel losses are multiplied by ``1 + Φ_ic``, with ``Φ`` the inverted,
    normalised distance map of the ground truth (``distance_penalty``): weight 2
    on the boundaries, 1 at the farthest voxels, so the network is pushed toward
    the hard boundary regions. The maxima are taken per item of the batch (as in
    the widely copied SegLoss implementation) over its labelled voxels, so on
    patches they are the patch's, on whole volumes the volume's.
    Cross-entropy uses each voxel's true class; Dice weights both of its sums, so
    a perfect prediction still gives 0. Takes no options.
    """

    name = "dpt"
    needs_distance = True

    def forward(self, batch: LossBatch, base: LossBase) -> Weights:
        return Weights(voxels=1 + distance_penalty(_require_distance(batch, self.name)))


WEIGHTINGS: dict[str, type[LossWeighting]] = {
    "none": NoWeighting,
    "inverse": InverseFrequencyWeighting,
    "median": MedianFrequencyWeighting,
    "focal": FocalWeighting,
    "dtm": DistanceTransformWeighting,
    "dpt": DistancePenaltyWeighting,
}
