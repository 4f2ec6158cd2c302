"""Channels-last convolutions: every conv weight converted, the same logits, the flag honoured."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from experiments.fit import apply_profile, parse_cli
from lightning_modules.memory_format import ChannelsLast, to_channels_last
from lightning_modules.networks import build_network

BASELINE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "baseline.yaml"
LAYOUTS = {2: torch.channels_last, 3: torch.channels_last_3d}


def small_network(spatial_dims: int, name: str = "unet") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(name, spatial_dims=spatial_dims, in_channels=2, out_channels=3, depth=2)


def conv_weights(network: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in network.parameters() if p.dim() >= 4]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_every_convolution_weight_becomes_channels_last(spatial_dims: int) -> None:
    network = small_network(spatial_dims)
    weights = conv_weights(network)
    before = [p.is_contiguous(memory_format=LAYOUTS[spatial_dims]) for p in weights]
    assert not all(before)  # PyTorch's default layout (1x1 kernels are both), so it can fail

    assert to_channels_last(network) == len(weights)
    assert all(p.is_contiguous(memory_format=LAYOUTS[spatial_dims]) for p in weights)
    # Biases and norm parameters (1D) are left as they are.
    assert all(p.is_contiguous() for p in network.parameters() if p.dim() < 4)


@pytest.mark.parametrize(("spatial_dims", "name"), [(2, "unet"), (2, "hybrid"), (3, "unet")])
def test_channels_last_gives_the_same_logits(spatial_dims: int, name: str) -> None:
    network = small_network(spatial_dims, name).eval()
    converted = copy.deepcopy(network)
    to_channels_last(converted)
    image = torch.randn(2, 2, *([32] * spatial_dims))
    first_conv = next(
        m for m in converted.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)
    )
    layouts: list[bool] = []
    first_conv.register_forward_hook(
        lambda _module, _inputs, out: layouts.append(
            out.is_contiguous(memory_format=LAYOUTS[spatial_dims])
        )
    )
    with torch.no_grad():
        expected, got = network(image), converted(image)
    # The fast layout ran. Judged at the first convolution, not the output: with one
    # thread, later 3D kernels may hand back PyTorch's default layout.
    assert layouts == [True]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_loaded_state_keeps_the_layout_and_values() -> None:
    network = small_network(2)
    to_channels_last(network)
    saved = small_network(2).state_dict()  # as a checkpoint in the default layout
    for tensor in saved.values():
        if tensor.dim() == 4:
            tensor.mul_(2)  # values that differ from the network's own
    network.load_state_dict(saved)
    for name, parameter in network.named_parameters():
        torch.testing.assert_close(parameter.detach(), saved[name])
        if parameter.dim() == 4:
            assert parameter.is_contiguous(memory_format=torch.channels_last), name


def test_the_callback_converts_only_when_enabled() -> None:
    enabled, disabled = small_network(2), small_network(2)
    ChannelsLast(enabled=True).setup(None, enabled, "fit")
    ChannelsLast(enabled=False).setup(None, disabled, "fit")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights(enabled))
    # A 1x1 kernel is channels-last in either layout; the others are not.
    assert not all(
        p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights(disabled)
    )


@pytest.mark.parametrize(
    ("flags", "expected"), [([], True), (["--channels_last.enabled", "false"], False)]
)
def test_the_config_decides(
    in_tmp: Path, phantom_manifest: Path, flags: list[str], expected: bool
) -> None:
    args = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
    args += ["--data.manifest", str(phantom_manifest), "--trainer.logger", "false", *flags]
    cli = parse_cli(apply_profile(args)[1:], run=False)
    [callback] = [c for c in cli.trainer.callbacks if isinstance(c, ChannelsLast)]
    assert callback.enabled is expected


class Recorder(pl.LightningModule):
    """One 3x3 convolution that notes, at every step, whether its weight is channels-last."""

    def __init__(self, build_late: bool = False) -> None:
        super().__init__()
        self.build_late = build_late
        self.conv = None if build_late else torch.nn.Conv2d(2, 3, 3, padding=1)
        self.layouts: list[bool] = []

    def configure_model(self) -> None:
        if self.conv is None:  # as pix2pix does when tested from a checkpoint alone
            self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def _step(self, batch: torch.Tensor) -> torch.Tensor:
        self.layouts.append(self.conv.weight.is_contiguous(memory_format=torch.channels_last))
        return self.conv(batch).mean()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self._step(batch)

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._step(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(root: Path) -> pl.Trainer:
    return pl.Trainer(
        max_steps=2,
        callbacks=[ChannelsLast()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )


def test_a_trainer_runs_fit_and_a_restored_test_channels_last(tmp_path: Path) -> None:
    batches = DataLoader(torch.randn(4, 2, 8, 8), batch_size=2)
    fitted = Recorder()
    fit = trainer(tmp_path)
    fit.fit(fitted, batches)
    assert fitted.layouts == [True, True]
    checkpoint = tmp_path / "tiny.ckpt"
    fit.save_checkpoint(checkpoint)

    for restored in (Recorder(), Recorder(build_late=True)):
        trainer(tmp_path).test(restored, batches, ckpt_path=checkpoint, verbose=False)
        assert restored.layouts == [True, True]
        torch.testing.assert_close(restored.conv.weight, fitted.conv.weight)
