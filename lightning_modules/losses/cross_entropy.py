"""``CrossEntropyLoss``: voxel-averaged cross-entropy under any loss-study weighting."""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.losses.loss_batch import prepare
from lightning_modules.losses.weightings import LossWeighting, NoWeighting


class CrossEntropyLoss(nn.Module):
    """Weighted cross-entropy ``-(1/N) sum_i sum_c w_ic g_ic log p_ic``.

    ``g`` is the one-hot truth, ``p`` the softmax, and ``N`` the number of
    labelled voxels: each voxel's term is multiplied by its mask value ``m_i`` and
    ``N = sum_i m_i``. With a one-hot ``g`` only the true class counts, so the
    weight of voxel ``i`` is ``w_{i, y_i}`` (class weight times voxel weight, from
    ``weighting``). With an empty mask the loss and its gradient are 0, not NaN.

    Shapes: logits ``(B, C, H, W[, D])``, target ``(B, H, W[, D])`` integer labels,
    mask ``(B, H, W[, D])``, distance ``(B, C, H, W[, D])`` (for ``dtm``/``dpt``).

    Args:
        weighting: a ``LossWeighting``; ``None`` for the unweighted loss.

    Example:
        >>> import torch
        >>> from lightning_modules.losses import FocalWeighting
        >>> target = torch.tensor([[[0, 1], [2, 2]]])  # (B, H, W), 3 classes
        >>> logits = torch.zeros(1, 3, 2, 2)  # p = 1/3 for every class
        >>> round(CrossEntropyLoss()(logits, target).item(), 4)  # log 3
        1.0986
        >>> loss = CrossEntropyLoss(weighting=FocalWeighting(gamma=2.0))
        >>> round(loss(logits, target).item(), 4)  # (1 - 1/3)^2 log 3
        0.4883
    """

    def __init__(self, *, weighting: LossWeighting | None = None) -> None:
        super().__init__()
        self.weighting = weighting if weighting is not None else NoWeighting()

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = prepare(logits, target, mask, distance)
        # The true class's log-probability is picked by index: a product with the
        # one-hot truth would turn a -inf logit of another class into NaN.
        voxel_loss = -batch.log_true_probability * batch.mask
        weight = self.weighting(batch, "ce").at_true_class(batch.target)
        if weight is not None:
            voxel_loss = voxel_loss * weight
        return voxel_loss.sum() / batch.mask.sum().clamp_min(1e-8)
