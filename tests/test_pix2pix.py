"""``Pix2PixModule``: network shapes, one manual-optimisation step, divergence, image metrics."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from monai.metrics import PSNRMetric, SSIMMetric
from torch.utils.data import DataLoader

from lightning_modules.divergence import NonFiniteLossError
from lightning_modules.image_metrics import image_metrics, masked_ssim
from lightning_modules.pix2pix import Pix2PixModule

SMALL = {"depth": 2, "base_channels": 4, "norm": "batch", "dropout": 0.0}
DISCRIMINATOR = {"channels": 8, "num_layers_d": 2}


def small_module(spatial_dims: int = 2, **options) -> Pix2PixModule:
    return Pix2PixModule(
        source=["a"],
        target="b",
        generator_options=SMALL,
        discriminator_options=DISCRIMINATOR,
        spatial_dims=spatial_dims,
        **options,
    )


@pytest.mark.parametrize(("spatial_dims", "shape"), [(2, (3, 1, 32, 32)), (3, (2, 1, 16, 16, 16))])
def test_generator_and_discriminator_shapes(spatial_dims, shape):
    module = small_module(spatial_dims).eval()
    source = torch.randn(shape)
    generated = module(source)
    assert generated.shape == shape  # one target channel at the source's size
    logits = module.discriminate(source, generated)
    # A map of patch verdicts, one channel, coarser than the image but more than one patch.
    assert logits.shape[:2] == (shape[0], 1) and logits.ndim == len(shape)
    assert all(1 < size < full for size, full in zip(logits.shape[2:], shape[2:], strict=True))


def test_the_discriminator_is_conditional_on_the_source():
    module = small_module().eval()
    first = next(m for m in module.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 2  # one source channel + the image judged
    image = torch.randn(2, 1, 32, 32)
    one = module.discriminate(torch.randn(2, 1, 32, 32), image)
    other = module.discriminate(torch.randn(2, 1, 32, 32), image)
    assert not torch.allclose(one, other)


def batches(image: torch.Tensor, count: int = 2) -> DataLoader:
    """``count`` batches of ``image`` (B, 2, H, W): channel 0 is the source, 1 the target."""
    return DataLoader([image] * count, batch_size=None, collate_fn=lambda item: {"image": item})


class GradientWatch(pl.Callback):
    """Both networks' gradients at each optimiser step, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, dict[str, list]]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        which = "generator" if optimizer is trainer.optimizers[0] else "discriminator"
        grads = {
            name: [None if p.grad is None else p.grad.clone() for p in network.parameters()]
            for name, network in (
                ("generator", pl_module.network),
                ("discriminator", pl_module.discriminator),
            )
        }
        self.steps.append((which, grads))


def same(first: list, second: list) -> bool:
    return all(
        (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        for a, b in zip(first, second, strict=True)
    )


def test_one_step_updates_both_networks_and_each_update_leaves_the_other_alone(tmp_path):
    torch.manual_seed(0)
    module = small_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    watch = GradientWatch()
    trainer = pl.Trainer(
        max_steps=4,  # optimiser steps: two training steps
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[watch],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, batches(torch.randn(4, 2, 32, 32)))
    after = module.state_dict()

    def changed(prefix: str) -> bool:
        keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
        return any(not torch.equal(before[k], after[k]) for k in keys)

    assert changed("network.") and changed("discriminator.")
    # Two training steps: discriminator, generator, discriminator, generator.
    assert [which for which, _ in watch.steps] == ["discriminator", "generator"] * 2
    (_, d1), (_, g1), (_, d2), (_, g2) = watch.steps
    # The discriminator's update put no gradient on the generator: it still holds the
    # gradient of its own last update (none at the first step).
    assert all(grad is None for grad in d1["generator"])
    assert same(d2["generator"], g1["generator"])
    # The generator's update, back-propagated through the discriminator, left the
    # discriminator's gradient as the discriminator's own update had it.
    assert same(g1["discriminator"], d1["discriminator"])
    assert same(g2["discriminator"], d2["discriminator"])
    assert any(grad is not None and grad.abs().sum() > 0 for grad in g1["generator"])


def test_a_nan_loss_stops_training_with_the_step_and_the_loss(tmp_path):
    image = torch.randn(4, 2, 32, 32)
    image[0, 0, 0, 0] = math.nan
    trainer = pl.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 0: generator output is nan"):
        trainer.fit(small_module(), batches(image))


def test_options_are_checked():
    with pytest.raises(ValueError, match="adversarial_loss"):
        small_module(adversarial_loss="wasserstein")
    with pytest.raises(ValueError, match="l1_weight"):
        small_module(l1_weight=-1.0)


def test_image_metrics_against_hand_values_and_monai():
    real = torch.zeros(12, 12, 12)
    real[2:10, 2:10, 2:10] = 4.0
    generated = real.clone()
    generated[4, 4, 4] = 2.0  # one voxel off by 2
    generated[0, 0, 0] = 50.0  # outside the mask: must not count
    mask = torch.zeros_like(real, dtype=torch.bool)
    mask[1:11, 1:11, 1:11] = True
    metrics = image_metrics(generated, real, mask)
    voxels = 10**3
    assert metrics["mae"] == pytest.approx(2 / voxels)
    # PSNR by hand: range 4 inside the mask, MSE = 2^2 / voxels.
    assert metrics["psnr"] == pytest.approx(10 * math.log10(4**2 / (4 / voxels)), rel=1e-5)
    inside = (generated[mask][None, None], real[mask][None, None])
    assert metrics["psnr"] == pytest.approx(float(PSNRMetric(max_val=4.0)(*inside)), rel=1e-6)
    # SSIM: identical images give 1, and ours equals MONAI's on the mask's bounding box.
    assert masked_ssim(real, real, mask) == pytest.approx(1.0)
    box = (slice(1, 11),) * 3
    expected = SSIMMetric(spatial_dims=3, data_range=4.0, win_size=9)(
        torch.where(mask[box], generated[box], 0.0)[None, None], real[box][None, None]
    )
    assert metrics["ssim"] == pytest.approx(float(expected), rel=1e-6)
    assert metrics["ssim"] < 1.0


def test_ssim_ignores_voxels_outside_the_mask_inside_its_bounding_box():
    torch.manual_seed(0)
    real = torch.rand(16, 16, 16)
    mask = torch.zeros_like(real, dtype=torch.bool)
    mask[2:14, 2:6, 2:14] = True  # an L: a bar and a foot, their box holds outside voxels
    mask[2:6, 2:14, 2:14] = True
    generated = real + 0.1 * torch.randn_like(real)
    other = generated.clone()
    other[~mask] = 100.0  # wildly different outside the mask, also inside the box
    assert masked_ssim(other, real, mask) == pytest.approx(masked_ssim(generated, real, mask))
    changed = generated.clone()
    changed[mask] += 0.5 * torch.randn(int(mask.sum()))
    assert masked_ssim(changed, real, mask) < masked_ssim(generated, real, mask)


def test_image_metrics_refuse_an_empty_mask():
    volume = torch.zeros(4, 4, 4)
    with pytest.raises(ValueError, match="no voxel"):
        image_metrics(volume, volume, volume.bool())


def test_a_patch_too_small_for_the_discriminator_is_refused_up_front():
    module = small_module(spatial_dims=3)  # two discriminator layers
    module.check_patch_size((16, 16, 16))
    with pytest.raises(ValueError, match=r"patch of \[16, 16, 4\] is too small"):
        module.check_patch_size((16, 16, 4))
