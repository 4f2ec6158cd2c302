"""``Pix2PixModule``: one MRI contrast translated into another (thread 3, Isola et al. 2017).

A generator (a network of the registry with one output channel) maps the source channels
to the target channel; a conditional PatchGAN discriminator (MONAI's
``PatchDiscriminator``) sees source and image together and says, patch by patch, whether
the image is real. The generator minimises the adversarial loss (MONAI's
``PatchAdversarialLoss``: ``vanilla`` is the binary cross-entropy of the paper,
``least_squares`` LSGAN's) plus ``l1_weight`` times the L1 distance to the real target.
Two optimisers step in turn through Lightning's manual optimisation.

Source and target are channels of the data module, named in the dataset description
(``translation: {source: [...], target: ...}``) unless the config names them. Images are
z-normalised per channel by the data module, so the generator's output is unbounded by
default (``output_activation: none``) and a generated image is on the target's
normalised scale. Validation and test generate whole volumes and log MAE, PSNR and SSIM
inside the head (``lightning_modules.image_metrics``) and a figure per epoch.
Lightning's ``trainer.max_steps`` counts optimiser steps: two per training step here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.loggers import MLFlowLogger
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator
from torch import nn

from datamodules.contract import SegmentationData
from datamodules.dataset import Translation
from datamodules.head_mask import head_mask
from lightning_modules.divergence import check_finite
from lightning_modules.image_metrics import IMAGE_METRICS, image_metrics
from lightning_modules.inference import predict_volume
from lightning_modules.networks import build_network
from lightning_modules.translation_figure import head_slice, translation_figure

ACTIVATIONS = {"none": nn.Identity, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
CRITERIA = {"vanilla": "bce", "least_squares": "least_squares"}
# The paper's PatchGAN: 64 filters and three stride-2 layers (70 x 70 patches at 256 x 256);
# halved filters here, for a CPU.
DISCRIMINATOR_DEFAULTS = {"channels": 32, "num_layers_d": 3}


class Generator(nn.Module):
    """A registry network with an output activation; its feature layers are the network's."""

    def __init__(self, network: nn.Module, activation: str) -> None:
        super().__init__()
        self.network = network
        self.activation = ACTIVATIONS[activation]()
        self.spatial_dims = network.spatial_dims

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.activation(self.network(source))

    def feature_layers(self) -> dict[str, Any]:
        """The hook points of the wrapped network (feature-map snapshots)."""
        return self.network.feature_layers()


class Pix2PixModule(pl.LightningModule):
    """Image-to-image translation by a conditional GAN, evaluated on whole volumes.

    Args:
        source: input channels; None takes the dataset description's translation.
        target: the channel to generate; None likewise.
        generator: a network name of ``lightning_modules.networks.NETWORKS``.
        generator_options: its keyword arguments.
        output_activation: ``none`` (z-normalised images), ``tanh`` or ``sigmoid``.
        discriminator_options: ``PatchDiscriminator`` arguments (``channels``,
            ``num_layers_d``, ``norm``, ...) other than dimensions and input channels.
        adversarial_loss: ``vanilla`` (cross-entropy) or ``least_squares``.
        l1_weight: lambda, the weight of the L1 term (100 in the paper).
        lr: Adam's learning rate of both networks (2e-4 in the paper).
        betas: Adam's betas (beta1 0.5 in the paper).
        spatial_dims: 2 or 3 (linked from the data module).
        in_channels: the data module's channels (linked; source and target among them).
        class_names: linked from the data module; unused by translation.
        inference_patch_size: patch size of whole-volume generation; None: whole slices
            in 2D, the whole volume in 3D.
        inference_batch_size: patches per forward pass at inference.
    """

    def __init__(
        self,
        source: Sequence[str] | None = None,
        target: str | None = None,
        generator: str = "unet",
        generator_options: dict[str, Any] | None = None,
        output_activation: Literal["none", "tanh", "sigmoid"] = "none",
        discriminator_options: dict[str, Any] | None = None,
        adversarial_loss: Literal["vanilla", "least_squares"] = "vanilla",
        l1_weight: float = 100.0,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        *,
        spatial_dims: int = 2,
        in_channels: int = 2,
        class_names: Sequence[str] = ("background", "foreground"),
        inference_patch_size: Sequence[int] | None = None,
        inference_batch_size: int = 32,
    ) -> None:
        super().__init__()
        if output_activation not in ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {list(ACTIVATIONS)}")
        if adversarial_loss not in CRITERIA:
            raise ValueError(f"adversarial_loss must be one of {list(CRITERIA)}")
        if l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0, got {l1_weight}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.spatial_dims = spatial_dims
        self.adversarial = PatchAdversarialLoss(
            criterion=CRITERIA[adversarial_loss], no_activation_leastsq=True
        )
        self.network: Generator | None = None
        self.discriminator: nn.Module | None = None
        # Without a data module (`prepare`), images are the source channels, then the target.
        self.source_index: list[int] = list(range(len(tuple(source or ()))))
        self.target_index = len(self.source_index)
        self.translation: Translation | None = None
        if source is not None and target is not None:
            self.translation = Translation(tuple(source), target)
            self.build(len(self.source_index))
        self._val_rows: list[dict[str, Any]] = []
        self._test_rows: list[dict[str, Any]] = []
        self.test_results: pd.DataFrame | None = None

    # ------------------------------------------------------------ the data
    def prepare(self, data: SegmentationData) -> None:
        """Find source and target among the data's channels, build the networks, check sizes.

        Raises:
            ValueError: no translation is named, its channels are not loaded, or a
                training patch is too small for the networks.
        """
        self.resolve(data)
        self.check_patch_size(tuple(data.patch_size))

    def resolve(self, data: SegmentationData, *, need_target: bool = True) -> None:
        """Set the source and target channels' indices in the data; build the networks.

        ``need_target=False`` (prediction) accepts data without the target channel: a
        generator is deployed where the target was never acquired.
        """
        described = data.description.translation
        source = self.hparams.source or (described.source if described else None)
        target = self.hparams.target or (described.target if described else None)
        if not source or not target:
            raise ValueError(
                "pix2pix needs source and target channels: set model.init_args.source and "
                "target, or `translation: {source: [...], target: ...}` in the dataset "
                f"description of {data.manifest}"
            )
        self.translation = Translation(tuple(source), target)  # checks target not in source
        needed = [*source, target] if need_target else list(source)
        missing = [name for name in needed if name not in data.channels]
        if missing:
            raise ValueError(
                f"pix2pix channels {missing} are not among the data's channels "
                f"{list(data.channels)}: set data.channels to include source and target"
            )
        # Recorded, so that a checkpoint rebuilds the same networks on its own.
        self.hparams.source, self.hparams.target = list(source), target
        self.source_index = [data.channels.index(name) for name in source]
        self.target_index = data.channels.index(target) if target in data.channels else -1
        if self.network is None:
            self.build(len(source))

    @torch.no_grad()
    def check_patch_size(self, patch_size: tuple[int, ...]) -> None:
        """Raise a ValueError when a training patch is too small for the networks.

        Each discriminator layer halves the patch; too many for the patch end in a
        convolution larger than its input, deep inside the first training step.
        """
        was_training = self.training
        self.eval()  # batch norm refuses a batch of one in training mode
        device = next(self.network.parameters()).device
        try:
            source = torch.zeros(1, len(self.source_index), *patch_size, device=device)
            self.discriminate(source, self.network(source))
        except RuntimeError as error:
            if "size" not in str(error).lower():
                raise
            layers = self.discriminator_options()["num_layers_d"]
            raise ValueError(
                f"pix2pix: a training patch of {list(patch_size)} is too small for the "
                f"generator or the discriminator ({layers} layers, each halving it): raise "
                "data.patch_size or lower model.init_args.discriminator_options.num_layers_d "
                f"({error})"
            ) from error
        finally:
            self.train(was_training)

    def discriminator_options(self) -> dict[str, Any]:
        """``PatchDiscriminator`` arguments: the pix2pix defaults, then the config's."""
        return {**DISCRIMINATOR_DEFAULTS, **(self.hparams.discriminator_options or {})}

    def build(self, sources: int) -> None:
        """The generator and discriminator for ``sources`` input channels."""
        hp = self.hparams
        network = build_network(
            hp.generator,
            spatial_dims=hp.spatial_dims,
            in_channels=sources,
            out_channels=1,
            **(hp.generator_options or {}),
        )
        self.network = Generator(network, hp.output_activation)
        self.discriminator = PatchDiscriminator(
            spatial_dims=hp.spatial_dims,
            in_channels=sources + 1,
            out_channels=1,
            **self.discriminator_options(),
        )

    def configure_model(self) -> None:
        # Test or predict from a checkpoint without `prepare`: resolve from the trainer's data.
        data = getattr(self.trainer, "datamodule", None)
        if data is not None:
            self.resolve(data, need_target=not self.trainer.predicting)
        if self.network is None:
            raise ValueError("pix2pix: no data module to find source and target channels in")

    @property
    def pseudo_channel(self) -> str:
        """The name of the generated channel (``pseudo_<target>``)."""
        return self.translation.pseudo

    def network_input(self, image: torch.Tensor) -> torch.Tensor:
        """The generator's input ``(B, S, ...)`` from a batch's ``image (B, C, ...)``."""
        return image[:, self.source_index]

    def split(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(source (B, S, ...), target (B, 1, ...))`` of a batch's ``image``."""
        return self.network_input(image), image[:, self.target_index : self.target_index + 1]

    # ------------------------------------------------------------- training
    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """The generated target ``(B, 1, ...)`` of source patches ``(B, S, ...)``."""
        return self.network(source)

    def discriminate(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Patch logits of the conditional discriminator for ``image`` given ``source``."""
        return self.discriminator(torch.cat([source, image], dim=1))[-1]

    def adversarial_loss(self, logits: torch.Tensor, *, real: bool, for_discriminator: bool):
        """The adversarial loss in float32: cross-entropy is unsafe under autocast."""
        with torch.autocast(self.device.type, enabled=False):
            return self.adversarial(
                logits.float(), target_is_real=real, for_discriminator=for_discriminator
            )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        source, real = self.split(batch["image"])
        generator_optimiser, discriminator_optimiser = self.optimizers()
        fake = self(source)
        # global_step counts optimiser steps, two per training step here.
        step = dict(epoch=self.current_epoch, step=self.global_step // 2)

        with self.toggled_optimizer(discriminator_optimiser):
            # Detached: the discriminator's update must not reach the generator.
            on_real = self.discriminate(source, real)
            on_fake = self.discriminate(source, fake.detach())
            check_finite(
                {"generator output": fake, "discriminator output": torch.cat([on_real, on_fake])},
                **step,
            )
            discriminator_loss = 0.5 * (
                self.adversarial_loss(on_real, real=True, for_discriminator=True)
                + self.adversarial_loss(on_fake, real=False, for_discriminator=True)
            )
            check_finite({"discriminator loss": discriminator_loss}, **step)
            discriminator_optimiser.zero_grad()
            self.manual_backward(discriminator_loss)
            discriminator_optimiser.step()

        with self.toggled_optimizer(generator_optimiser):
            adversarial = self.adversarial_loss(
                self.discriminate(source, fake), real=True, for_discriminator=False
            )
            l1 = torch.nn.functional.l1_loss(fake.float(), real.float())
            generator_loss = adversarial + self.hparams.l1_weight * l1
            check_finite({"generator loss": generator_loss}, **step)
            generator_optimiser.zero_grad()
            self.manual_backward(generator_loss)
            generator_optimiser.step()

        size = len(source)
        for name, value in {
            "train/loss": generator_loss,
            "train/l1": l1,
            "train/adversarial": adversarial,
            "train/discriminator": discriminator_loss,
        }.items():
            self.log(name, value, on_step=False, on_epoch=True, batch_size=size)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        betas = tuple(hp.betas)
        return [
            torch.optim.Adam(self.network.parameters(), lr=hp.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=betas),
        ]

    # ---------------------------------------------------------- evaluation
    def generate(self, image: torch.Tensor) -> torch.Tensor:
        """The generated target ``(H, W, D)`` of a whole volume's ``image (C, H, W, D)``."""
        return predict_volume(
            self.network,
            image[self.source_index],
            spatial_dims=self.spatial_dims,
            patch_size=self.hparams.inference_patch_size,
            batch_size=self.hparams.inference_batch_size,
        )[0]

    def evaluate(self, batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Metrics of one whole volume, and the volumes a figure shows."""
        image = batch["image"][0]
        generated = self.generate(image)
        real = image[self.target_index]
        source = image[self.source_index[0]]
        mask = torch.from_numpy(head_mask(source.cpu().numpy())).to(real.device)
        row = {"subject": batch["subject"], **image_metrics(generated, real, mask)}
        return row, {"source": source, "generated": generated, "real": real, "mask": mask}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        row, volumes = self.evaluate(batch)
        self._val_rows.append(row)
        if batch_idx == 0 and not self.trainer.sanity_checking:
            self.log_figure(
                batch["subject"], volumes, f"translation/epoch_{self.current_epoch:03d}"
            )

    def on_validation_epoch_end(self) -> None:
        if not self._val_rows:
            return
        means = pd.DataFrame(self._val_rows)[list(IMAGE_METRICS)].mean()
        self._val_rows.clear()
        for metric in IMAGE_METRICS:
            self.log(f"val/{metric}", float(means[metric]), prog_bar=metric == "mae")

    def on_test_epoch_start(self) -> None:
        self._test_rows.clear()
        self.test_results = None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        row, volumes = self.evaluate(batch)
        self._test_rows.append(row)
        if batch_idx == 0:
            self.log_figure(batch["subject"], volumes, f"translation/test_{batch['subject']}")

    def on_test_epoch_end(self) -> None:
        self.test_results = pd.DataFrame(self._test_rows)
        for metric in IMAGE_METRICS:
            self.log(f"test/{metric}", float(self.test_results[metric].mean()))

    def log_figure(self, subject: str, volumes: dict[str, torch.Tensor], name: str) -> None:
        """Log source | generated | real | difference of the head's fullest slice."""
        logger = self.logger
        if not isinstance(logger, MLFlowLogger) or not self.trainer.is_global_zero:
            return
        figure = translation_figure(
            subject=subject,
            source=volumes["source"],
            generated=volumes["generated"],
            real=volumes["real"],
            slice_index=head_slice(volumes["mask"]),
            title=f"epoch {self.current_epoch}",
        )
        logger.experiment.log_figure(logger.run_id, figure, f"{name}.png")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """The generated target of one volume, with what a writer needs."""
        return {
            "subject": batch["subject"],
            "generated": self.generate(batch["image"][0]).cpu(),
            "channel": self.pseudo_channel,
            "affine": batch["affine"],
        }
