"""How close a generated image is to the real one, inside a mask: MAE, PSNR and SSIM.

Voxels outside the head (air) are trivially easy to generate and would inflate every
score, so each metric is measured inside a mask (``datamodules.head_mask``). PSNR and
SSIM are MONAI's (``PSNRMetric``, ``SSIMMetric``); their intensity range is the real
image's range inside the mask, since the images are z-normalised, not in ``[0, 1]``.

>>> real = torch.zeros(4, 4, 4)
>>> generated = real.clone()
>>> generated[0, 0, 0] = 2.0
>>> mask = torch.ones(4, 4, 4, dtype=torch.bool)
>>> round(image_metrics(generated, real, mask)["mae"], 4)
0.0312
"""

from __future__ import annotations

import math

import torch
from monai.metrics import PSNRMetric, SSIMMetric

IMAGE_METRICS = ("mae", "psnr", "ssim")
# MONAI's (and Wang et al.'s) SSIM window; smaller volumes get the largest odd window that fits.
SSIM_WINDOW = 11


def image_metrics(generated: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> dict:
    """``{"mae", "psnr", "ssim"}`` of ``generated`` against ``real`` inside ``mask``.

    Args:
        generated: one channel, ``(H, W)`` or ``(H, W, D)``.
        real: the same shape.
        mask: boolean, the same shape; the voxels that count.

    Raises:
        ValueError: for mismatched shapes or an empty mask.
    """
    if generated.shape != real.shape or mask.shape != real.shape:
        raise ValueError(
            f"generated {tuple(generated.shape)}, real {tuple(real.shape)} and mask "
            f"{tuple(mask.shape)} must have one shape"
        )
    mask = mask.bool()
    if not mask.any():
        raise ValueError("the mask holds no voxel")
    generated, real = generated.float(), real.float()
    inside_generated, inside_real = generated[mask], real[mask]
    data_range = float(inside_real.max() - inside_real.min()) or 1.0
    mae = float((inside_generated - inside_real).abs().mean())
    # PSNRMetric averages over every axis but the batch: the masked voxels as one row.
    psnr = PSNRMetric(max_val=data_range)(inside_generated[None, None], inside_real[None, None])
    return {"mae": mae, "psnr": float(psnr.squeeze()), "ssim": masked_ssim(generated, real, mask)}


def masked_ssim(generated: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> float:
    """MONAI's SSIM over the mask's bounding box, voxels outside the mask set equal (zero).

    SSIM compares windows, not voxels, so it cannot take a voxel mask; within the box the
    outside voxels agree by construction and count as matching structure.
    """
    where = torch.nonzero(mask)
    box = tuple(
        slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(0)[0], where.max(0)[0], strict=True)
    )
    inside = mask[box]
    generated = torch.where(inside, generated[box], 0.0)
    real = torch.where(inside, real[box], 0.0)
    window = min(SSIM_WINDOW, *real.shape)
    window -= 1 - window % 2  # odd
    if window < 3:
        return math.nan
    data_range = float(real[inside].max() - real[inside].min()) or 1.0
    metric = SSIMMetric(spatial_dims=real.ndim, data_range=data_range, win_size=window)
    return float(metric(generated[None, None], real[None, None]).squeeze())
