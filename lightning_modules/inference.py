"""Whole-volume inference by patches: TorchIO's GridSampler and GridAggregator.

In 2D mode every patch is one slice thick along the last axis, squeezed to a 2D
tensor for the network and put back afterwards: slice-wise inference with the
same code path as 3D. Whole slices, the 2D default, skip the grid: the slices go
to the network in batches directly, as MONAI's ``SliceInferer`` does, which gives
the same logits without TorchIO cutting and stitching every slice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torchio as tio
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def class_indices(logits: torch.Tensor) -> torch.Tensor:
    """Class indices ``(*spatial)`` of logits ``(K, *spatial)``: the first class of highest logit.

    ``torch.max`` over the class axis, which gives ``argmax(0)``'s indices (ties to the
    first class, NaN wins) several times faster on a CPU, where PyTorch's ``argmax`` over
    a leading axis is slow (``benchmarks/evaluation_cost.py``).

    Example:
        >>> class_indices(torch.tensor([[0.1, 2.0, 0.5], [0.3, 2.0, 0.2]])).tolist()
        [1, 0, 0]
    """
    return logits.max(0).indices


def folded_for_inference(network: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """A copy of ``network`` with each batch norm in eval mode folded into the convolution
    before it, or ``network`` itself where there is nothing to fold.

    In eval mode a batch norm is an affine map per channel, so the convolution's weights
    and bias can absorb it (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same logits
    to float rounding (``tests/test_inference.py`` bounds the difference), without the
    norm's pass over every feature map, about a sixth of a 2D U-Net's inference on a CPU
    (``benchmarks/inference_vs_monai.py``). Only a convolution followed directly by its
    norm in an ``nn.Sequential`` is folded; the original network is left as it is.
    """
    if not isinstance(network, nn.Module) or not _foldable_pairs(network):
        return network
    folded = copy.deepcopy(network)
    for sequence, index in _foldable_pairs(folded):
        sequence[index] = fuse_conv_bn_eval(sequence[index], sequence[index + 1])
        sequence[index + 1] = nn.Identity()
    return folded


def _foldable_pairs(network: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """(sequence, position) of each convolution directly followed by an eval-mode batch norm."""
    pairs = []
    for sequence in network.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        for index in range(len(sequence) - 1):
            conv, norm = sequence[index], sequence[index + 1]
            if (
                type(conv) in (nn.Conv2d, nn.Conv3d)
                and type(norm) in (nn.BatchNorm2d, nn.BatchNorm3d)
                and not (conv.training or norm.training)
                and norm.running_mean is not None
            ):
                pairs.append((sequence, index))
    return pairs


def inference_patch_size(
    volume_shape: Sequence[int], spatial_dims: int, patch_size: Sequence[int] | None
) -> tuple[int, int, int]:
    """The 3D patch size the grid sampler uses, clipped to the volume.

    ``None`` means whole slices in 2D and the whole volume in 3D.
    """
    shape = tuple(int(s) for s in volume_shape)
    if patch_size is None:
        patch = (*shape[:2], 1) if spatial_dims == 2 else shape
    else:
        patch = tuple(patch_size)
        if spatial_dims == 2:
            patch = (*patch[:2], 1)
        if len(patch) != 3:
            raise ValueError(f"a 3D inference patch size needs 3 values, got {patch_size!r}")
    return tuple(min(p, s) for p, s in zip(patch, shape, strict=True))


@torch.no_grad()
def predict_volume(
    network: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    spatial_dims: int,
    patch_size: Sequence[int] | None = None,
    overlap: int = 0,
    batch_size: int = 16,
) -> torch.Tensor:
    """Run ``network`` over a whole volume patch by patch and stitch the logits.

    Args:
        network: maps ``(B, C, *patch)`` to logits ``(B, K, *patch)``; in eval mode,
            its batch norms are folded into its convolutions (``folded_for_inference``).
        image: ``(C, H, W, D)`` on the network's device.
        spatial_dims: 2 (slice-wise) or 3.
        patch_size: see ``inference_patch_size``.
        overlap: voxels shared by neighbouring patches in-plane (even numbers);
            overlapping logits are averaged.
        batch_size: patches per forward pass.

    Returns:
        Logits ``(K, H, W, D)`` on the image's device.
    """
    network = folded_for_inference(network)
    patch = inference_patch_size(image.shape[1:], spatial_dims, patch_size)
    if spatial_dims == 2 and patch[:2] == tuple(image.shape[1:3]):
        return predict_slices(network, image, batch_size=batch_size)
    patch_overlap = tuple(0 if p == 1 else min(overlap, p - 1) // 2 * 2 for p in patch)
    subject = tio.Subject(image=tio.ScalarImage(tensor=image.detach().cpu()))
    sampler = tio.GridSampler(subject, patch, patch_overlap)
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    loader = torch.utils.data.DataLoader(sampler, batch_size=batch_size)
    for patches in loader:
        inputs = patches["image"][tio.DATA].to(image.device)
        if spatial_dims == 2:
            logits = network(inputs.squeeze(-1)).unsqueeze(-1)
        else:
            logits = network(inputs)
        aggregator.add_batch(logits.float().cpu(), patches[tio.LOCATION])
    return aggregator.get_output_tensor().to(image.device)


@torch.no_grad()
def predict_slices(
    network: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, *, batch_size: int
) -> torch.Tensor:
    """Logits ``(K, H, W, D)`` of a volume ``(C, H, W, D)``, whole axial slices in batches."""
    slices = image.movedim(-1, 0)  # (D, C, H, W): the slices are the batch
    output: torch.Tensor | None = None
    for start in range(0, len(slices), batch_size):
        logits = network(slices[start : start + batch_size]).float().movedim(0, -1)
        if output is None:  # written batch by batch: one copy of the logits, contiguous
            output = torch.empty((*logits.shape[:-1], len(slices)), device=logits.device)
        output[..., start : start + batch_size] = logits
    return output
