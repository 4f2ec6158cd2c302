"""Tests for lightning_modules.losses: hand-computed values, MONAI/torch equivalence, masks."""

from __future__ import annotations

import math

import monai.losses
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lightning_modules.losses import (
    CrossEntropyLoss,
    DiceCELoss,
    DiceLoss,
    build_loss,
)

LN2 = math.log(2.0)

# Every loss configuration the properties below must hold for.
LOSS_OPTIONS: list[tuple[str, dict[str, object]]] = [
    ("ce", {}),
    ("dice", {"form": "global", "include_background": True}),
    ("dice", {"form": "global", "include_background": False}),
    ("dice", {"form": "mean_class", "include_background": True}),
    ("dice", {"form": "mean_class", "include_background": False}),
    ("dice_ce", {"form": "global"}),
    ("dice_ce", {"form": "mean_class", "include_background": False, "dice_weight": 0.5}),
]
LOSS_IDS = [
    f"{base}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for base, opts in LOSS_OPTIONS
]
SPATIAL_SHAPES = [(5, 6), (4, 5, 3)]


def random_case(
    spatial: tuple[int, ...], *, batch: int = 2, classes: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits ``(B, C, *spatial)`` in double precision and labels ``(B, *spatial)``."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, *spatial, generator=generator, dtype=torch.float64)
    target = torch.randint(0, classes, (batch, *spatial), generator=generator)
    return logits, target


def value_and_grad(
    loss: nn.Module,
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss value and its gradient with respect to the logits."""
    logits = logits.detach().clone().requires_grad_(True)
    value = loss(logits, target, mask)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def probabilities_to_logits(probabilities: list[list[float]]) -> torch.Tensor:
    """``(C, N)`` probabilities -> ``(1, C, N)`` logits whose softmax gives them back."""
    return torch.tensor(probabilities, dtype=torch.float64).log().unsqueeze(0)


# --- build_loss -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "options", "expected_type"),
    [
        ("ce", {}, CrossEntropyLoss),
        ("dice", {}, DiceLoss),
        ("dice", {"form": "mean_class", "include_background": False, "smooth": 1.0}, DiceLoss),
        ("dice_ce", {}, DiceCELoss),
        ("dice_ce", {"dice_weight": 2.0, "ce_weight": 0.5, "form": "mean_class"}, DiceCELoss),
    ],
)
def test_build_loss_builds_the_named_base(
    base: str, options: dict[str, object], expected_type: type[nn.Module]
) -> None:
    loss = build_loss(base, **options)
    assert type(loss) is expected_type
    dice = loss.dice if isinstance(loss, DiceCELoss) else loss
    for key in ("form", "include_background", "smooth"):
        if key in options:
            assert getattr(dice, key) == options[key]
    for key in ("dice_weight", "ce_weight"):
        if key in options:
            assert getattr(loss, key) == options[key]


def test_build_loss_explicit_none_weighting() -> None:
    assert isinstance(build_loss("dice", "none"), DiceLoss)


@pytest.mark.parametrize(
    ("args", "options", "named"),
    [
        (("focal",), {}, "'focal'"),
        (("Dice",), {}, "'Dice'"),
        (("dice", "boundary"), {}, "'boundary'"),
        (("ce",), {"form": "global"}, "form"),
        (("dice",), {"bogus": 1}, "bogus"),
        (("dice_ce",), {"gamma": 2.0}, "gamma"),
        (("dice",), {"form": "per_voxel"}, "per_voxel"),
        (("dice_ce",), {"form": "per_voxel"}, "per_voxel"),
        (("dice",), {"smooth": -1.0}, "smooth"),
    ],
)
def test_build_loss_rejects_bad_names_and_options(
    args: tuple[str, ...], options: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        build_loss(*args, **options)


# --- hand-computed values --------------------------------------------------------------

# Example A, shape (B, C, H, W) = (1, 2, 2, 1). Logits (0, ln 3) give softmax (1/4, 3/4);
# logits (0, 0) give (1/2, 1/2). Voxel 1 is class 1, voxel 2 is class 0.
EXAMPLE_A_LOGITS = torch.tensor([[[[0.0], [0.0]], [[math.log(3.0)], [0.0]]]], dtype=torch.float64)
EXAMPLE_A_TARGET = torch.tensor([[[1], [0]]])
# Class 0: intersection = 1/2, sum g + sum p = 1 + (1/4 + 1/2) = 7/4 -> Dice 4/7.
# Class 1: intersection = 3/4, sum g + sum p = 1 + (3/4 + 1/2) = 9/4 -> Dice 2/3.


@pytest.mark.parametrize(
    ("options", "mask", "expected"),
    [
        # CE = (-ln 3/4 - ln 1/2) / 2
        ({}, None, (math.log(4 / 3) + LN2) / 2),
        # only voxel 1 labelled: -ln 3/4
        ({}, [[[1.0], [0.0]]], math.log(4 / 3)),
        # only voxel 2 labelled: -ln 1/2
        ({}, [[[0.0], [1.0]]], LN2),
        # a fractional mask weights voxels: (1 * ln 4/3 + 0.5 * ln 2) / 1.5
        ({}, [[[1.0], [0.5]]], (math.log(4 / 3) + 0.5 * LN2) / 1.5),
    ],
)
def test_cross_entropy_by_hand(
    options: dict[str, object], mask: list[list[list[float]]] | None, expected: float
) -> None:
    mask_tensor = None if mask is None else torch.tensor(mask, dtype=torch.float64)
    value = CrossEntropyLoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET, mask_tensor)
    assert value.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # global: 1 - 2 (1/2 + 3/4) / (7/4 + 9/4) = 1 - 5/8
        ({"form": "global", "smooth": 0.0}, 3 / 8),
        # mean_class: 1 - (4/7 + 2/3) / 2 = 1 - 13/21
        ({"form": "mean_class", "smooth": 0.0}, 8 / 21),
        # without background both forms are 1 - Dice of class 1 = 1 - 2/3
        ({"form": "global", "include_background": False, "smooth": 0.0}, 1 / 3),
        ({"form": "mean_class", "include_background": False, "smooth": 0.0}, 1 / 3),
        # smooth 1 on class 1 alone: 1 - (3/2 + 1) / (9/4 + 1) = 1 - 10/13
        ({"form": "mean_class", "include_background": False, "smooth": 1.0}, 3 / 13),
        # smooth 1, global with background: 1 - (5/2 + 1) / (4 + 1) = 1 - 7/10
        ({"form": "global", "smooth": 1.0}, 3 / 10),
    ],
)
def test_dice_by_hand_two_classes(options: dict[str, object], expected: float) -> None:
    value = DiceLoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


# Example B, shape (B, C, N) = (1, 3, 4), class 2 absent from the target.
# Columns are voxels; rows are the softmax probabilities of classes 0, 1, 2.
EXAMPLE_B_LOGITS = probabilities_to_logits(
    [
        [1 / 2, 1 / 4, 1 / 4, 1 / 2],
        [1 / 4, 1 / 2, 1 / 4, 1 / 4],
        [1 / 4, 1 / 4, 1 / 2, 1 / 4],
    ]
)
EXAMPLE_B_TARGET = torch.tensor([[0, 1, 1, 0]])
# Class 0: I = 1/2 + 1/2 = 1,   sum p = 3/2, sum g = 2 -> Dice 2 / (7/2) = 4/7.
# Class 1: I = 1/2 + 1/4 = 3/4, sum p = 5/4, sum g = 2 -> Dice (3/2) / (13/4) = 6/13.
# Class 2: I = 0,               sum p = 5/4, sum g = 0 -> Dice s / (5/4 + s).


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"form": "mean_class", "smooth": 0.0}, 1 - (4 / 7 + 6 / 13 + 0) / 3),
        ({"form": "mean_class", "include_background": False, "smooth": 0.0}, 1 - (6 / 13) / 2),
        (
            {"form": "mean_class", "include_background": False, "smooth": 1.0},
            1 - ((3 / 2 + 1) / (13 / 4 + 1) + 1 / (5 / 4 + 1)) / 2,
        ),
        # global: 1 - 2 (1 + 3/4 + 0) / 8 (sum g + sum p = 2 N = 8 with background)
        ({"form": "global", "smooth": 0.0}, 1 - 3.5 / 8),
        # global, no background: 1 - 2 (3/4) / (13/4 + 5/4)
        ({"form": "global", "include_background": False, "smooth": 0.0}, 2 / 3),
    ],
)
def test_dice_by_hand_three_classes_one_absent(options: dict[str, object], expected: float) -> None:
    value = DiceLoss(**options)(EXAMPLE_B_LOGITS, EXAMPLE_B_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_cross_entropy_by_hand_three_classes() -> None:
    # -(ln 1/2 + ln 1/2 + ln 1/4 + ln 1/2) / 4 = 5 ln 2 / 4
    value = CrossEntropyLoss()(EXAMPLE_B_LOGITS, EXAMPLE_B_TARGET)
    assert value.item() == pytest.approx(5 * LN2 / 4, abs=1e-12)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # 1 * (3/8) + 1 * CE
        ({"smooth": 0.0}, 3 / 8 + (math.log(4 / 3) + LN2) / 2),
        ({"smooth": 0.0, "dice_weight": 2.0, "ce_weight": 0.0}, 2 * 3 / 8),
        ({"smooth": 0.0, "dice_weight": 0.0, "ce_weight": 3.0}, 3 * (math.log(4 / 3) + LN2) / 2),
        (
            {"smooth": 0.0, "form": "mean_class", "dice_weight": 0.5, "ce_weight": 2.0},
            0.5 * 8 / 21 + 2.0 * (math.log(4 / 3) + LN2) / 2,
        ),
    ],
)
def test_dice_ce_is_the_weighted_sum(options: dict[str, object], expected: float) -> None:
    value = DiceCELoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


# --- equivalence with torch and MONAI ----------------------------------------------------


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cross_entropy_equals_torch(spatial: tuple[int, ...], seed: int) -> None:
    logits, target = random_case(spatial, seed=seed, classes=4)
    ours = CrossEntropyLoss()(logits, target)
    reference = F.cross_entropy(logits, target)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_masked_cross_entropy_equals_torch_ignore_index(spatial: tuple[int, ...]) -> None:
    """A binary mask is the same as torch's ``ignore_index`` on the unlabelled voxels."""
    logits, target = random_case(spatial, seed=3)
    mask = torch.rand(target.shape, generator=torch.Generator().manual_seed(4)) > 0.4
    ours = CrossEntropyLoss()(logits, target, mask)
    reference = F.cross_entropy(logits, target.masked_fill(~mask, -100), ignore_index=-100)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_mean_class_dice_equals_monai_dice(
    spatial: tuple[int, ...], include_background: bool, smooth: float
) -> None:
    """``form="mean_class"`` equals MONAI ``DiceLoss(batch=True)``.

    MONAI computes ``1 - mean_c (2 tp_c + s) / (2 tp_c + fp_c + fn_c + s)`` with
    ``2 tp + fp + fn = sum p + sum g``. Equality needs ``batch=True``: ours pools the
    batch before the ratio, MONAI's default (``batch=False``) averages per-item ratios.
    """
    logits, target = random_case(spatial, seed=5, classes=4)
    ours = DiceLoss(form="mean_class", include_background=include_background, smooth=smooth)
    reference = monai.losses.DiceLoss(
        include_background=include_background,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
    )
    torch.testing.assert_close(
        ours(logits, target), reference(logits, target.unsqueeze(1)), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_global_dice_equals_monai_uniform_generalized_dice(
    spatial: tuple[int, ...], include_background: bool, smooth: float
) -> None:
    """``form="global"`` equals MONAI ``GeneralizedDiceLoss(w_type="uniform", batch=True)``.

    With uniform weights MONAI's generalised Dice is
    ``1 - (2 sum_c tp_c + s) / (sum_c (sum p_c + sum g_c) + s)``, our global form. Only
    ``w_type="uniform"`` and ``batch=True`` match: the other weightings scale classes
    by ``1/|g_c|`` or ``1/|g_c|^2``, and ``batch=False`` computes one ratio per item.
    """
    logits, target = random_case(spatial, seed=6, classes=4)
    ours = DiceLoss(form="global", include_background=include_background, smooth=smooth)
    reference = monai.losses.GeneralizedDiceLoss(
        include_background=include_background,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        w_type="uniform",
        smooth_nr=smooth,
        smooth_dr=smooth,
    )
    torch.testing.assert_close(
        ours(logits, target), reference(logits, target.unsqueeze(1)), atol=1e-5, rtol=0
    )


def test_dice_pools_the_batch_unlike_monai_per_item_default() -> None:
    """The batch pooling is what the ``batch=True`` above stands for: per item differs."""
    logits, target = random_case((6, 6), seed=7, batch=2)
    ours = DiceLoss(form="mean_class")(logits, target)
    per_item = monai.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=False)(
        logits, target.unsqueeze(1)
    )
    assert abs(ours.item() - per_item.item()) > 1e-4


# --- masks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_masked_voxels_change_nothing_and_get_no_gradient(
    base: str, options: dict[str, object], spatial: tuple[int, ...]
) -> None:
    loss = build_loss(base, **options)
    logits, target = random_case(spatial, seed=8)
    generator = torch.Generator().manual_seed(9)
    mask = (torch.rand(target.shape, generator=generator) > 0.5).double()
    assert 0 < mask.sum() < mask.numel()
    unlabelled = (mask == 0).unsqueeze(1).expand_as(logits)

    # Change logits and targets only where the mask is 0.
    other_logits = torch.where(unlabelled, 10 * torch.randn_like(logits) - 3, logits)
    other_target = torch.where(mask == 0, (target + 1) % logits.shape[1], target)

    value, grad = value_and_grad(loss, logits, target, mask)
    other_value, other_grad = value_and_grad(loss, other_logits, other_target, mask)

    torch.testing.assert_close(other_value, value, atol=1e-10, rtol=0)
    torch.testing.assert_close(other_grad, grad, atol=1e-10, rtol=0)
    assert torch.all(grad[unlabelled] == 0)
    assert grad[~unlabelled].abs().sum() > 0


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
def test_masked_value_equals_value_on_the_labelled_voxels_alone(
    base: str, options: dict[str, object]
) -> None:
    """Masking the second half of a 1D sequence equals cropping it away."""
    loss = build_loss(base, **options)
    logits, target = random_case((10,), seed=10)
    mask = torch.zeros(target.shape, dtype=torch.float64)
    mask[:, :6] = 1
    masked = loss(logits, target, mask)
    cropped = loss(logits[..., :6], target[..., :6])
    torch.testing.assert_close(masked, cropped, atol=1e-10, rtol=0)


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
def test_all_ones_mask_equals_no_mask(base: str, options: dict[str, object]) -> None:
    loss = build_loss(base, **options)
    logits, target = random_case((4, 5), seed=11)
    ones = torch.ones(target.shape, dtype=torch.bool)
    torch.testing.assert_close(loss(logits, target, ones), loss(logits, target), atol=0, rtol=0)


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_empty_mask_gives_zero_loss_and_zero_gradient(
    base: str, options: dict[str, object], spatial: tuple[int, ...]
) -> None:
    loss = build_loss(base, **options)
    logits, target = random_case(spatial, seed=12)
    value, grad = value_and_grad(loss, logits, target, torch.zeros(target.shape))
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.all(grad == 0)


# --- absent classes and perfect predictions ---------------------------------------------------


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
@pytest.mark.parametrize("present", [(0, 1), (0,), (1, 2)])
def test_class_absent_from_batch_gives_finite_value_and_gradient(
    base: str, options: dict[str, object], present: tuple[int, ...]
) -> None:
    loss = build_loss(base, **options)
    logits, _ = random_case((4, 3, 2), seed=13, classes=3)
    choice = torch.randint(
        0, len(present), (2, 4, 3, 2), generator=torch.Generator().manual_seed(1)
    )
    target = torch.tensor(present)[choice]
    value, grad = value_and_grad(loss, logits, target)
    assert torch.isfinite(value)
    assert value.item() >= 0
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def confident_logits(target: torch.Tensor, classes: int, scale: float) -> torch.Tensor:
    """Logits ``scale`` on the true class and 0 elsewhere."""
    return scale * F.one_hot(target, classes).movedim(-1, 1).double()


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_perfect_prediction_gives_zero_loss(
    base: str, options: dict[str, object], spatial: tuple[int, ...]
) -> None:
    _, target = random_case(spatial, seed=14, classes=3)
    assert set(target.unique().tolist()) == {0, 1, 2}
    value = build_loss(base, **options)(confident_logits(target, 3, 30.0), target)
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
def test_perfect_prediction_beats_a_wrong_one(base: str, options: dict[str, object]) -> None:
    _, target = random_case((5, 5), seed=15, classes=3)
    loss = build_loss(base, **options)
    perfect = loss(confident_logits(target, 3, 30.0), target)
    wrong = loss(confident_logits((target + 1) % 3, 3, 30.0), target)
    assert wrong.item() > perfect.item() + 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"form": "global"},
        {"form": "mean_class"},
        {"form": "mean_class", "include_background": False},
    ],
)
def test_dice_loss_is_between_zero_and_one(options: dict[str, object]) -> None:
    loss = DiceLoss(**options)
    for seed in range(5):
        logits, target = random_case((6, 4), seed=seed)
        value = loss(5 * logits, target).item()
        assert 0.0 <= value <= 1.0


# --- shape errors -----------------------------------------------------------------------------


def _shape_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    logits = torch.zeros(2, 3, 4, 5)
    target = torch.zeros(2, 4, 5, dtype=torch.long)
    return [
        ("logits (B, C)", torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), None),
        ("target with channel axis", logits, target.unsqueeze(1), None),
        ("target spatial mismatch", logits, torch.zeros(2, 4, 6, dtype=torch.long), None),
        ("target batch mismatch", logits, torch.zeros(1, 4, 5, dtype=torch.long), None),
        ("mask with channel axis", logits, target, torch.ones(2, 1, 4, 5)),
        ("mask spatial mismatch", logits, target, torch.ones(2, 5, 4)),
    ]


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS, ids=LOSS_IDS)
@pytest.mark.parametrize(
    ("case", "logits", "target", "mask"), _shape_cases(), ids=[c[0] for c in _shape_cases()]
)
def test_shape_errors_raise_value_error(
    base: str,
    options: dict[str, object],
    case: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
) -> None:
    with pytest.raises(ValueError, match="shape"):
        build_loss(base, **options)(logits, target, mask)


# --- non-finite logits and placeholder labels -----------------------------------------------


def test_cross_entropy_with_minus_inf_logit_on_wrong_class_matches_torch() -> None:
    logits = torch.zeros(1, 2, 2, 1)
    logits[0, 1, 0, 0] = float("-inf")  # class 1 ruled out at voxel 1, whose label is 0
    target = torch.zeros(1, 2, 1, dtype=torch.long)
    reference = F.cross_entropy(logits, target)
    assert torch.isfinite(reference)
    torch.testing.assert_close(CrossEntropyLoss()(logits, target), reference)


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS[:2], ids=LOSS_IDS[:2])
def test_non_finite_logits_on_masked_voxels_change_nothing(
    base: str, options: dict[str, object]
) -> None:
    loss = build_loss(base, **options)
    logits, target = random_case((4,), seed=16)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    poisoned = logits.clone()
    poisoned[..., 3] = float("nan")
    torch.testing.assert_close(loss(poisoned, target, mask), loss(logits, target, mask))


@pytest.mark.parametrize(("base", "options"), LOSS_OPTIONS[:2], ids=LOSS_IDS[:2])
def test_placeholder_labels_on_masked_voxels_are_ignored(
    base: str, options: dict[str, object]
) -> None:
    """An 'ignore' value such as 255 may stand in the target wherever the mask is 0."""
    loss = build_loss(base, **options)
    logits, target = random_case((4,), seed=17)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    placeholder = target.clone()
    placeholder[mask == 0] = 255
    torch.testing.assert_close(loss(logits, placeholder, mask), loss(logits, target, mask))
