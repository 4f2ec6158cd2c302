"""Training-step time of pix2pix against the segmentation U-Net it is compared with.

One pix2pix step (``Pix2PixModule.training_step``'s work without Lightning, with the
module's networks and losses: generator forward, discriminator on real and generated,
discriminator update, generator update with adversarial + L1 loss, each update with
the other network's weights frozen as ``toggled_optimizer`` does) against one
segmentation step (the same U-Net, Dice + CE, one update), both on a quick-profile
batch (16 patches of 64 x 64), interleaved and as medians, so that the ratio says what
the translation costs per step on this machine. Also the whole-volume generation of one
96 x 96 x 64 phantom-sized volume and its metrics inside the head mask. The networks
are channels-last, as ``versaseg fit`` and ``translate`` store them
(``channels_last.enabled``); ``--default-layout`` times PyTorch's.

Run: .venv/bin/python benchmarks/pix2pix_step.py [--steps 20] [--default-layout]
Record the numbers in docs/performance.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.bench_common import in_layout
from datamodules.head_mask import head_mask
from lightning_modules.image_metrics import image_metrics
from lightning_modules.losses import build_loss
from lightning_modules.networks import build_network
from lightning_modules.pix2pix import Pix2PixModule

UNET = {"depth": 4, "base_channels": 16, "norm": "batch", "dropout": 0.0}


def pix2pix_step(channels_last: bool) -> Callable[[], None]:
    module = Pix2PixModule(source=["a"], target="b", generator_options=UNET)
    in_layout(module, channels_last=channels_last)
    betas = (0.5, 0.999)
    generator_opt = torch.optim.Adam(module.network.parameters(), lr=2e-4, betas=betas)
    discriminator_opt = torch.optim.Adam(module.discriminator.parameters(), lr=2e-4, betas=betas)
    source, real = torch.randn(16, 1, 64, 64), torch.randn(16, 1, 64, 64)

    def only(network: torch.nn.Module) -> None:
        # What Lightning's toggled_optimizer does: the other network's weights need no grad.
        for other in (module.network, module.discriminator):
            other.requires_grad_(other is network)

    def step() -> None:
        fake = module(source)
        only(module.discriminator)
        loss_d = 0.5 * (
            module.adversarial_loss(
                module.discriminate(source, real), real=True, for_discriminator=True
            )
            + module.adversarial_loss(
                module.discriminate(source, fake.detach()), real=False, for_discriminator=True
            )
        )
        discriminator_opt.zero_grad()
        loss_d.backward()
        discriminator_opt.step()
        only(module.network)
        adversarial = module.adversarial_loss(
            module.discriminate(source, fake), real=True, for_discriminator=False
        )
        loss_g = adversarial + 100 * torch.nn.functional.l1_loss(fake, real)
        generator_opt.zero_grad()
        loss_g.backward()
        generator_opt.step()

    return step


def segmentation_step(channels_last: bool) -> Callable[[], None]:
    network = build_network("unet", spatial_dims=2, in_channels=2, out_channels=5, **UNET)
    in_layout(network, channels_last=channels_last)
    loss = build_loss("dice_ce", "none")
    optimiser = torch.optim.AdamW(network.parameters(), lr=2e-3)
    image, label = torch.randn(16, 2, 64, 64), torch.randint(0, 5, (16, 64, 64))

    def step() -> None:
        value = loss(network(image), label)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()

    return step


def seconds(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--default-layout", action="store_true", help="PyTorch's layout, not channels-last"
    )
    options = parser.parse_args()
    channels_last = not options.default_layout
    torch.manual_seed(0)
    steps = {
        "pix2pix": pix2pix_step(channels_last),
        "segmentation": segmentation_step(channels_last),
    }
    for run in steps.values():  # warm-up: first calls allocate
        run(), run()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(options.steps):
        for name, run in steps.items():
            times[name].append(seconds(run))
    medians = {name: statistics.median(values) for name, values in times.items()}
    module = Pix2PixModule(source=["a"], target="b", generator_options=UNET).eval()
    in_layout(module, channels_last=channels_last)
    volume = torch.randn(2, 96, 96, 64)
    generation = statistics.median(seconds(lambda: module.generate(volume)) for _ in range(3))
    generated = module.generate(volume)
    mask = torch.from_numpy(head_mask(volume[0].numpy()))
    metrics = statistics.median(
        seconds(lambda: image_metrics(generated, volume[1], mask)) for _ in range(3)
    )
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'channels-last' if channels_last else 'default layout'}")  # fmt: skip
    print("| step | median s | x segmentation step |\n| --- | ---: | ---: |")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} | {value / medians['segmentation']:.2f} |")
    print(f"whole-volume generation (96 x 96 x 64, slice by slice): {generation:.2f} s")
    print(f"MAE, PSNR and SSIM inside a mask of that volume: {metrics:.3f} s")


if __name__ == "__main__":
    main()
